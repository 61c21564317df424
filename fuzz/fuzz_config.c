/* fuzz_config.c - libFuzzer target for config.json: the input is the text given to
 * plm_config_parse. A refused config must say why; an accepted one must be written by
 * plm_config_to_json as text that parses back to the identical config. */
#include "core/common.h"
#include "model/config.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    plm_error("%s", "");
    plm_config c;
    if (plm_config_parse(&c, text, "config.json") != 0) {
        if (!strstr(plm_last_error(), "config.json")) abort(); /* failure must say why */
    } else {
        char *json = plm_config_to_json(&c, NULL);
        plm_config r;
        if (plm_config_parse(&r, json, "written.json") != 0 || memcmp(&r, &c, sizeof r) != 0) abort();
        free(json);
    }
    free(text);
    return 0;
}
