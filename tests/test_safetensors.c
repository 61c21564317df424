/* test_safetensors.c - the safetensors reader's validation, on files built byte by byte:
 * every malformed header must be refused with a message, never read out of bounds, and
 * every tensor handed out must be aligned for its dtype. A file of 1 MB or more is
 * mapped, not read: it round-trips, its pages let go (plm_st_release) read back the same
 * bytes, and its truncations are refused like a read file's. */
#include "core/common.h"
#include "test.h"
#include "train/safetensors.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A file: 8-byte little-endian header length, the header as given (no padding), then
 * data_len bytes 0, 1, 2, ... The buffer is malloc'ed, as plm_st_parse requires. */
static char *make_file(const char *header, size_t data_len, size_t *len) {
    size_t hl = strlen(header);
    *len = 8 + hl + data_len;
    char *buf = plm_malloc(*len);
    for (int i = 0; i < 8; i++) buf[i] = (char)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, header, hl);
    for (size_t i = 0; i < data_len; i++) buf[8 + hl + i] = (char)i;
    return buf;
}

static int parse(plm_safetensors *st, const char *header, size_t data_len) {
    size_t len;
    char *buf = make_file(header, data_len, &len);
    return plm_st_parse(st, buf, len, "t.safetensors");
}

/* The header must be refused, with a message naming the file and containing want. */
static void refused(const char *name, const char *header, size_t data_len, const char *want) {
    plm_safetensors st;
    int rc = parse(&st, header, data_len);
    const char *err = plm_last_error();
    TEST_CHECK(rc == -1 && strstr(err, "t.safetensors") && strstr(err, want), name, "rc %d, error \"%s\" (want \"%s\")",
               rc, rc ? err : "", want);
    if (rc == 0) plm_st_free(&st);
}

static void accepted(const char *name, const char *header, size_t data_len) {
    plm_safetensors st;
    int rc = parse(&st, header, data_len);
    TEST_CHECK(rc == 0, name, "%s", plm_last_error());
    if (rc == 0) plm_st_free(&st);
}

#define F32(off0, off1, shape) "{\"dtype\":\"F32\",\"shape\":" shape ",\"data_offsets\":[" off0 "," off1 "]}"

static void test_valid(void) {
    plm_safetensors st;
    int rc = parse(&st,
                   "{\"__metadata__\":{\"format\":\"pt\",\"k\":\"v\"},\"b\":" F32("8", "16", "[2]") ",\"a\":" F32(
                       "0", "8", "[1,2]") ",\"z\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[16,16]}}",
                   16);
    TEST_CHECK(rc == 0, "valid_parses", "%s", plm_last_error());
    if (rc) return;
    const plm_st_tensor *a = plm_st_find(&st, "a"), *b = plm_st_find(&st, "b"), *z = plm_st_find(&st, "z");
    TEST_CHECK(st.num_tensors == 3 && a && b && z && !plm_st_find(&st, "c") && !plm_st_find(&st, "__metadata__"),
               "valid_find", "%d tensors", st.num_tensors);
    TEST_CHECK(a && a->ndim == 2 && a->shape[0] == 1 && a->shape[1] == 2 && a->nbytes == 8 && b && b->nbytes == 8 &&
                   memcmp(b->data, "\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f", 8) == 0 && z && z->nbytes == 0,
               "valid_tensors", "wrong shape, size or data");
    TEST_CHECK(st.num_meta == 2 && strcmp(plm_st_meta(&st, "k"), "v") == 0 && !plm_st_meta(&st, "x"), "valid_meta",
               "%d metadata", st.num_meta);
    plm_st_free(&st);
    accepted("empty_header", "{}", 0);
    accepted("trailing_spaces", "{\"a\":" F32("0", "4", "[1]") "}   ", 4);
    accepted("zero_size_and_zero_dims", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,0]}}", 0);
}

/* Two __metadata__ objects: the metadata arrays were sized by the first and filled by
 * both (heap overflow). Any repeated key is refused. */
static void test_duplicates(void) {
    refused("duplicate_metadata",
            "{\"__metadata__\":{\"a\":\"1\"},\"__metadata__\":{\"b\":\"2\",\"c\":\"3\",\"d\":\"4\"}}", 0,
            "duplicate key \"__metadata__\"");
    refused("duplicate_tensor", "{\"a\":" F32("0", "4", "[1]") ",\"a\":" F32("4", "8", "[1]") "}", 8,
            "duplicate key \"a\"");
    refused("duplicate_meta_key", "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, "duplicate key \"k\"");
    refused("duplicate_dtype_key", "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,4]}}",
            4, "duplicate key \"dtype\"");
}

static void test_numbers(void) {
    refused("offset_string", "{\"a\":" F32("\"x\"", "4", "[1]") "}", 4, "data_offsets");
    refused("offset_null", "{\"a\":" F32("null", "4", "[1]") "}", 4, "data_offsets");
    refused("offset_fraction", "{\"a\":" F32("0.5", "4.5", "[1]") "}", 5, "data_offsets");
    refused("offset_negative", "{\"a\":" F32("-4", "0", "[1]") "}", 4, "data_offsets");
    refused("offset_three", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,4]}}", 4, "data_offsets");
    refused("offset_past_end", "{\"a\":" F32("0", "8", "[2]") "}", 4, "truncated");
    refused("offset_reversed", "{\"a\":" F32("4", "0", "[1]") "}", 4, "data_offsets");
    refused("shape_fraction", "{\"a\":" F32("0", "4", "[1.5]") "}", 4, "shape");
    refused("shape_negative", "{\"a\":" F32("0", "4", "[-1]") "}", 4, "shape");
    refused("shape_string", "{\"a\":" F32("0", "4", "[\"1\"]") "}", 4, "shape");
    refused("shape_size_mismatch", "{\"a\":" F32("0", "4", "[2]") "}", 4, "do not match its shape");
    /* 2^32 * 2^32 overflows 64 bits before the 0: the reference implementation refuses it */
    refused("shape_overflow", "{\"a\":" F32("0", "0", "[4294967296,4294967296,0]") "}", 0, "overflow");
    refused("bytes_overflow", "{\"a\":{\"dtype\":\"F64\",\"shape\":[2147483648,2147483648],\"data_offsets\":[0,0]}}", 0,
            "overflow");
}

/* The data area must be indexed entirely: no gap, no overlap, nothing after the last tensor. */
static void test_coverage(void) {
    refused("gap", "{\"a\":" F32("0", "4", "[1]") ",\"b\":" F32("8", "12", "[1]") "}", 12, "not in any tensor");
    refused("not_from_zero", "{\"a\":" F32("4", "8", "[1]") "}", 8, "not in any tensor");
    refused("trailing_data", "{\"a\":" F32("0", "4", "[1]") "}", 8, "not in any tensor");
    refused("data_without_tensors", "{}", 4, "not in any tensor");
    refused("overlap", "{\"a\":" F32("0", "8", "[2]") ",\"b\":" F32("4", "8", "[1]") "}", 8, "overlap");
    refused("same_range", "{\"a\":" F32("0", "4", "[1]") ",\"b\":" F32("0", "4", "[1]") "}", 4, "overlap");
}

static void test_header(void) {
    refused("short_file", "", 0, ""); /* 8 bytes of length 0: an empty header */
    plm_safetensors st;
    char *buf = plm_malloc(5);
    memcpy(buf, "\x02\0\0\0\0", 5);
    TEST_CHECK(plm_st_parse(&st, buf, 5, "t.safetensors") == -1 && strstr(plm_last_error(), "truncated"),
               "under_8_bytes", "%s", plm_last_error());
    /* a length beyond the limit, and one beyond the file (2^63: no overflow in hlen + 8) */
    size_t len;
    buf = make_file("{}", 0, &len);
    memcpy(buf, "\x01\xe1\xf5\x05\0\0\0\0", 8); /* 100000001 */
    TEST_CHECK(plm_st_parse(&st, buf, len, "t.safetensors") == -1 && strstr(plm_last_error(), "limit"),
               "header_too_large", "%s", plm_last_error());
    buf = make_file("{}", 0, &len);
    memcpy(buf, "\0\0\0\0\0\0\0\x80", 8);
    TEST_CHECK(plm_st_parse(&st, buf, len, "t.safetensors") == -1, "header_length_huge", "accepted");
    buf = make_file("{}", 0, &len);
    memcpy(buf, "\x03\0\0\0\0\0\0\0", 8);
    TEST_CHECK(plm_st_parse(&st, buf, len, "t.safetensors") == -1 && strstr(plm_last_error(), "truncated"),
               "header_past_end", "%s", plm_last_error());
    refused("leading_space", " {}", 0, "'{'");
    refused("array_header", "[]", 0, "'{'");
    refused("trailing_garbage", "{}xyz", 0, "after the JSON");
    refused("invalid_json", "{\"a\":", 0, "invalid JSON");
    refused("invalid_utf8", "{\"__metadata__\":{\"k\":\"\xff\"}}", 0, "UTF-8");
    refused("unknown_dtype", "{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype");
    refused("lowercase_dtype", "{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype");
    refused("dtype_number", "{\"a\":{\"dtype\":1,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype");
    refused("too_many_dims", "{\"a\":" F32("0", "4", "[1,1,1,1,1,1,1,1,1]") "}", 4, "dimensions");
    accepted("eight_dims", "{\"a\":" F32("0", "4", "[1,1,1,1,1,1,1,1]") "}", 4);
    refused("tensor_not_object", "{\"a\":5}", 0, "\"a\"");
    refused("missing_shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "shape");
    refused("meta_not_object", "{\"__metadata__\":[\"a\"]}", 0, "__metadata__");
    refused("meta_number", "{\"__metadata__\":{\"k\":1}}", 0, "must be a string");
    refused("meta_object", "{\"__metadata__\":{\"k\":{}}}", 0, "must be a string");
    refused("meta_null", "{\"__metadata__\":{\"k\":null}}", 0, "must be a string");
}

/* Tensor data is read as float arrays: it must be aligned for its dtype however the
 * header length or the offsets fall, and still hold the file's bytes. */
static void test_alignment(void) {
    const char *headers[] = {
        "{\"a\":" F32("0", "8", "[2]") "}", /* header lengths 54 and 55: data misaligned */
        "{\"a\":" F32("0", "8", "[2]") "} ",
        "{\"u\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},\"a\":" F32("1", "9", "[2]") "}", /* odd */
        "{\"u\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]},\"d\":{\"dtype\":\"F64\",\"shape\":[1],"
        "\"data_offsets\":[3,11]},\"a\":" F32("11", "19", "[2]") "}",
    };
    for (size_t h = 0; h < PLM_ARRAY_LEN(headers); h++) {
        plm_safetensors st;
        size_t off = h >= 2 ? (h == 2 ? 1 : 11) : 0, data_len = off + 8;
        int rc = parse(&st, headers[h], data_len);
        char name[64];
        snprintf(name, sizeof name, "aligned_%zu", h);
        TEST_CHECK(rc == 0, name, "%s", plm_last_error());
        if (rc) continue;
        int ok = 1;
        for (int i = 0; i < st.num_tensors; i++) {
            const plm_st_tensor *t = &st.tensors[i];
            ok &= (uintptr_t)t->data % plm_dtype_size(t->dtype) == 0;
        }
        const plm_st_tensor *a = plm_st_find(&st, "a");
        float want[2], got[2];
        unsigned char bytes[8];
        for (int i = 0; i < 8; i++) bytes[i] = (unsigned char)(off + (size_t)i);
        memcpy(want, bytes, 8);
        const float *p = a->data; /* a direct read, as the loaders do: UBSan checks alignment */
        got[0] = p[0];
        got[1] = p[1];
        ok &= memcmp(got, want, 8) == 0;
        if (h == 3) {
            const plm_st_tensor *d = plm_st_find(&st, "d"), *u = plm_st_find(&st, "u");
            double dv = *(const double *)d->data, dw;
            for (int i = 0; i < 8; i++) bytes[i] = (unsigned char)(3 + i);
            memcpy(&dw, bytes, 8);
            ok &= memcmp(&dv, &dw, 8) == 0 && memcmp(u->data, "\0\1\2", 3) == 0;
        }
        TEST_CHECK(ok, name, "tensor data misaligned or wrong");
        plm_st_free(&st);
    }
}

/* What plm writes, plm reads back: header padded to 8, data unchanged. */
static void test_writer_roundtrip(void) {
    char path[] = "/tmp/plm_test_st_XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0) close(fd);
    float x[6] = {1, 2, 3, 4, 5, 6};
    double y[1] = {0.5};
    uint8_t z[3] = {7, 8, 9};
    int64_t s1[2] = {2, 3}, s2[1] = {1}, s3[1] = {3}, s0[1] = {0};
    plm_st_writer w;
    plm_st_writer_init(&w);
    plm_st_add(&w, "x", PLM_DT_F32, 2, s1, x);
    plm_st_add(&w, "z", PLM_DT_U8, 1, s3, z);
    plm_st_add(&w, "y", PLM_DT_F64, 1, s2, y);
    plm_st_add(&w, "e", PLM_DT_F32, 1, s0, x);
    plm_st_add_meta(&w, "step", "7");
    int rc = plm_st_write(&w, path);
    plm_st_writer_free(&w);
    plm_safetensors st;
    rc = rc ? rc : plm_st_load(&st, path);
    unlink(path);
    TEST_CHECK(rc == 0, "writer_roundtrip_load", "%s", plm_last_error());
    if (rc) return;
    const plm_st_tensor *tx = plm_st_find(&st, "x"), *ty = plm_st_find(&st, "y"), *tz = plm_st_find(&st, "z");
    TEST_CHECK(tx && ty && tz && memcmp(tx->data, x, sizeof x) == 0 && memcmp(tz->data, z, 3) == 0 &&
                   *(const double *)ty->data == 0.5 && strcmp(plm_st_meta(&st, "step"), "7") == 0 &&
                   strcmp(plm_st_meta(&st, "format"), "pt") == 0,
               "writer_roundtrip_data", "tensors or metadata differ");
    /* the writer puts larger dtypes first, so the reader needs no aligned copies */
    TEST_CHECK(st.aligned == NULL, "writer_aligned", "F64 tensor after F32 and U8 left misaligned");
    plm_st_free(&st);
}

/* 2 MB: over the 1 MB from which plm_st_load maps the file. */
static void test_mapped(void) {
    enum { N = 512 * 1024 + 3 }; /* floats: an odd length, pieces not on page bounds */
    char path[] = "/tmp/plm_test_st_XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0) close(fd);
    float *x = plm_malloc(N * sizeof(float));
    for (int i = 0; i < N; i++) x[i] = (float)i * 0.25f - 7.0f;
    int64_t shape[1] = {N};
    plm_st_writer w;
    plm_st_writer_init(&w);
    plm_st_add(&w, "x", PLM_DT_F32, 1, shape, x);
    int rc = plm_st_write(&w, path);
    plm_st_writer_free(&w);
    plm_safetensors st;
    rc = rc ? rc : plm_st_load(&st, path);
    TEST_CHECK(rc == 0 && st.mapped, "mapped_load", "rc %d, mapped %d: %s", rc, rc ? 0 : st.mapped, plm_last_error());
    if (rc == 0) {
        const plm_st_tensor *t = plm_st_find(&st, "x");
        bool same = t && memcmp(t->data, x, N * sizeof(float)) == 0;
        if (t) plm_st_release(&st, (const char *)t->data + 12345, 1 << 20); /* pages come back from the file */
        bool again = t && memcmp(t->data, x, N * sizeof(float)) == 0;
        TEST_CHECK(same && again, "mapped_data_and_release", "data differ (before %d, after release %d)", same, again);
        plm_st_free(&st);
    }
    /* truncated: 4 bytes short, then only the header and half the data */
    long full = 0;
    FILE *f = fopen(path, "rb");
    if (f && fseek(f, 0, SEEK_END) == 0) full = ftell(f);
    if (f) fclose(f);
    long cuts[2] = {full - 4, full / 2};
    for (int c = 0; c < 2; c++) {
        bool cut = full > 0 && truncate(path, cuts[c]) == 0;
        rc = plm_st_load(&st, path);
        const char *err = plm_last_error();
        char name[32];
        snprintf(name, sizeof name, "mapped_truncated_%d", c);
        TEST_CHECK(cut && rc == -1 && strstr(err, path) && strstr(err, "truncated"), name, "rc %d, error \"%s\"", rc,
                   rc ? err : "");
        if (rc == 0) plm_st_free(&st);
    }
    unlink(path);
    free(x);
}

int main(void) {
    test_valid();
    test_duplicates();
    test_numbers();
    test_coverage();
    test_header();
    test_alignment();
    test_writer_roundtrip();
    test_mapped();
    TEST_EXIT();
}
