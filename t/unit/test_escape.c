/*
 * test_escape.c — zs_escape_line (core/zs_escape.c): what masterd writes for a child's line.
 * C0 and C1 controls and bytes that are not UTF-8 are escaped byte by byte; valid UTF-8 text
 * passes unchanged; a full buffer cuts at a character boundary.
 */
#include <check.h>
#include <string.h>
#include "check_run.h"
#include "core/zs_escape.h"

static const char *esc(const char *in, size_t n, size_t cap)
{
    static char out[1024];
    size_t len = zs_escape_line(out, cap, in, n);
    ck_assert_uint_lt(len, cap);
    out[len] = '\0';
    return out;
}
#define ESC(lit) esc(lit, sizeof(lit) - 1, 1024)

START_TEST(c0_controls)
{
    ck_assert_str_eq(ESC("a\nb\rc\td\x1b[2J\x7f\x01"), "a\\nb\\rc\td\\x1b[2J\\x7f\\x01");
    ck_assert_str_eq(esc("a\0b", 3, 1024), "a\\x00b");
}
END_TEST

START_TEST(c1_controls_raw_and_encoded)
{
    ck_assert_str_eq(ESC("A\x9b" "2JC\x85" "D\x80\x9f"), "A\\x9b2JC\\x85D\\x80\\x9f");
    /* U+009B (CSI) and U+0085 (NEL) as UTF-8: still controls, escaped byte by byte. */
    ck_assert_str_eq(ESC("\xc2\x9b" "x\xc2\x85" "y\xc2\x80"), "\\xc2\\x9bx\\xc2\\x85y\\xc2\\x80");
}
END_TEST

START_TEST(valid_utf8_unchanged)
{
    const char *ok[] = { "caf\xc3\xa9", "\xc2\xa0nbsp", "\xe6\x97\xa5\xe6\x9c\xac", "\xf0\x9f\x98\x80",
                         "\xef\xbf\xbd", "\xf4\x8f\xbf\xbf", "\xed\x9f\xbf", "\xe0\xa0\x80", "\xf0\x90\x80\x80" };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        ck_assert_str_eq(esc(ok[i], strlen(ok[i]), 1024), ok[i]);
}
END_TEST

START_TEST(invalid_utf8_escaped)
{
    ck_assert_str_eq(ESC("\xff\xfe"), "\\xff\\xfe");
    ck_assert_str_eq(ESC("\xc0\xaf"), "\\xc0\\xaf");               /* overlong '/' */
    ck_assert_str_eq(ESC("\xe0\x80\xaf"), "\\xe0\\x80\\xaf");      /* overlong, 3 bytes */
    ck_assert_str_eq(ESC("\xed\xa0\x80"), "\\xed\\xa0\\x80");      /* a surrogate */
    ck_assert_str_eq(ESC("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80"); /* beyond U+10FFFF */
    ck_assert_str_eq(ESC("\xe6\x97 x"), "\\xe6\\x97 x");           /* cut short */
    ck_assert_str_eq(ESC("x\xe6\x97"), "x\\xe6\\x97");              /* cut by the end */
    ck_assert_str_eq(ESC("\xa9" "caf\xc3\xa9"), "\\xa9caf\xc3\xa9"); /* a lone continuation byte */
}
END_TEST

START_TEST(full_buffer_cuts_at_a_boundary)
{
    /* cap 6: at most 5 bytes; "ab" + "\xe6\x97\xa5" fits (5), the next character does not. */
    ck_assert_str_eq(esc("ab\xe6\x97\xa5\xe6\x97\xa5", 8, 6), "ab\xe6\x97\xa5");
    ck_assert_str_eq(esc("abc\xe6\x97\xa5", 6, 6), "abc");
    ck_assert_str_eq(esc("a\x1b\x1b", 3, 6), "a\\x1b");
    ck_assert_str_eq(esc("abc", 3, 1), "");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("escape");
    TCase *tc = tcase_create("escape");
    tcase_add_test(tc, c0_controls);
    tcase_add_test(tc, c1_controls_raw_and_encoded);
    tcase_add_test(tc, valid_utf8_unchanged);
    tcase_add_test(tc, invalid_utf8_escaped);
    tcase_add_test(tc, full_buffer_cuts_at_a_boundary);
    suite_add_tcase(s, tc);
    return check_run(s);
}
