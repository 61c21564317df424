/* test_config.c - config.json text: floats are written as the user gave them (the
 * shortest decimal that reads back as the same float) and every config round-trips. */
#include "core/common.h"
#include "model/config.h"
#include "test.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

/* to_json then parse gives back the identical config; returns the text (to free). */
static char *roundtrip(const plm_config *c, const char *name) {
    char *s = plm_config_to_json(c, NULL);
    plm_config r;
    int rc = plm_config_parse(&r, s, "config.json");
    TEST_CHECK(rc == 0 && memcmp(&r, c, sizeof r) == 0, name, "%s", rc ? plm_last_error() : "config differs");
    return s;
}

int main(void) {
    plm_config c;
    plm_config_default(&c, PLM_ARCH_BERT);
    char *s = roundtrip(&c, "roundtrip_bert");
    TEST_CHECK(strstr(s, "\"layer_norm_eps\":\t1e-12,") && strstr(s, "\"initializer_range\":\t0.02,") &&
                   strstr(s, "\"hidden_dropout_prob\":\t0.1,") && !strstr(s, "99999"),
               "floats_as_given_bert", "want 1e-12, 0.02, 0.1 in: %.600s", s);
    free(s);

    plm_config_default(&c, PLM_ARCH_GPT2);
    s = roundtrip(&c, "roundtrip_gpt2");
    TEST_CHECK(strstr(s, "\"layer_norm_epsilon\":\t1e-05,") && strstr(s, "\"attn_pdrop\":\t0.1,"),
               "floats_as_given_gpt2", "want 1e-05, 0.1 in: %.600s", s);
    free(s);

    /* values needing every digit, and the extremes of float, still read back exactly */
    const float vals[][4] = {{1.0f / 3, 0.123456789f, 0.5f, 0.7f},
                             {FLT_MIN, FLT_TRUE_MIN, 0.0f, 3e-7f},
                             {0.99999994f, 1e-30f, 0.25f, 16777216.0f}};
    for (size_t i = 0; i < PLM_ARRAY_LEN(vals); i++) {
        plm_config_default(&c, i % 2 ? PLM_ARCH_GPT2 : PLM_ARCH_BERT);
        c.layer_norm_eps = vals[i][0] > 0 && vals[i][0] < 1 ? vals[i][0] : 1e-6f;
        c.hidden_dropout_prob = vals[i][1];
        c.attention_probs_dropout_prob = vals[i][2];
        c.initializer_range = vals[i][3];
        char name[32];
        snprintf(name, sizeof name, "roundtrip_floats_%zu", i);
        free(roundtrip(&c, name));
    }

    /* the text written is what was read: a user's 1e-12 stays 1e-12 */
    plm_config u;
    int rc = plm_config_parse(&u, "{\"model_type\": \"bert\", \"layer_norm_eps\": 1e-12, \"initializer_range\": 0.02}",
                              "config.json");
    s = rc == 0 ? plm_config_to_json(&u, NULL) : NULL;
    TEST_CHECK(s && strstr(s, "1e-12") && strstr(s, "0.02"), "user_floats_kept", "want 1e-12, 0.02 in: %.600s",
               s ? s : plm_last_error());
    free(s);

    /* 1e40 is inf as a float: it passed "initializer_range > 0" and was written as null */
    rc = plm_config_parse(&u, "{\"initializer_range\": 1e40}", "config.json");
    TEST_CHECK(rc == -1 && strstr(plm_last_error(), "initializer_range"), "float_out_of_range", "rc %d: %s", rc,
               rc ? plm_last_error() : "accepted");

    /* a huge hidden_size without intermediate_size: 4 * hidden_size overflowed int (fuzz_config) */
    rc = plm_config_parse(&u, "{\"hidden_size\": 990255550}", "config.json");
    TEST_CHECK(rc == -1 && strstr(plm_last_error(), "hidden_size"), "huge_hidden_size", "rc %d: %s", rc,
               rc ? plm_last_error() : "accepted");
    TEST_EXIT();
}
