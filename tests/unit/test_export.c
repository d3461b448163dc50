// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Unit tests for the exports' field names (src/export.c): CSV's columns and JSON's "fields" are
 * the names gmemtrace cat prints, kind by kind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "export.h"
#include "model.h"
#include "strbuf.h"

/* The name cat prints for a field, where it prints it differently. */
static const char *cat_name(const char *field)
{
	if (!strcmp(field, "file_flags"))
		return " flags=";
	if (!strcmp(field, "range_end"))
		return " range=[";
	if (!strcmp(field, "to_order"))
		return "->";
	return NULL;
}

static void test_fields_are_cats_names(void **state)
{
	unsigned int kind, checked = 0;

	for (kind = 1; kind < GMEM_EV_KIND_MAX; kind++) {
		/* every optional field present: both flags, a vCPU stat */
		struct gmem_event e = { .kind = kind, .vm = 7, .tid = 8, .ino = 9, .a = 10, .b = 11,
					.c = 12, .sub = 1, .order = 1, .to_order = 0,
					.flags = GMEM_EVF_RANGE | GMEM_EVF_INFILE };
		struct strbuf sb = STRBUF_INIT;
		json_t *f = export__fields_json(&e), *v;
		const char *key, *alias, *text;
		char want[64];

		assert_non_null(f);
		assert_int_equal(export__text(&sb, &e, 0, model__kind_name(kind)), 0);
		text = strbuf__str(&sb);
		json_object_foreach(f, key, v) {
			alias = cat_name(key);
			snprintf(want, sizeof(want), " %s=", key);
			if (!strstr(text, alias ? alias : want))
				fail_msg("%s: field %s is not what cat prints: %s",
					 model__kind_name(kind), key, text);
			checked++;
		}
		json_decref(f);
		strbuf__release(&sb);
	}
	assert_true(checked > 60);
}

/* CSV: one named column per field, a kind fills its own; no a, b, c. */
static void test_csv_columns(void **state)
{
	struct gmem_event e = { .kind = GMEM_EV_BIND, .vm = 7, .tid = 8, .ino = 9, .a = 0x1000,
				.b = 4096, .c = 0, .sub = 3, .result = 0,
				.flags = GMEM_EVF_SYNTH };
	char *buf = NULL, *hdr, *row, *save = NULL, *h, *r;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	const char *want[][2] = { { "ino", "9" }, { "gpa", "4096" }, { "size", "4096" },
				  { "offset", "0" }, { "slot", "3" }, { "result", "0" },
				  { "pages", "" }, { "record_flags", "synth" } };
	unsigned int i, found = 0;

	assert_non_null(f);
	assert_int_equal(export__csv_header(f), 0);
	assert_int_equal(export__csv(f, &e, "bind"), 0);
	fclose(f);
	hdr = strtok_r(buf, "\n", &save);
	row = strtok_r(NULL, "\n", &save);
	assert_non_null(row);
	assert_null(strstr(hdr, ",a,"));
	/* walk the header and the row together; empty cells are kept by strsep */
	while ((h = strsep(&hdr, ",")) && (r = strsep(&row, ","))) {
		for (i = 0; i < sizeof(want) / sizeof(want[0]); i++)
			if (!strcmp(h, want[i][0])) {
				assert_string_equal(r, want[i][1]);
				found++;
			}
	}
	assert_int_equal(found, sizeof(want) / sizeof(want[0]));
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fields_are_cats_names),
		cmocka_unit_test(test_csv_columns),
	};

	return cmocka_run_group_tests_name("export", tests, NULL, NULL);
}
