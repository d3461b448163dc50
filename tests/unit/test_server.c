// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Unit tests for the exporter's content negotiation (src/server.c) and the RFC 3339 times its
 * snapshots and gmemtop's batch output carry (src/cli.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "cli.h"
#include "server.h"

static void test_openmetrics_negotiation(void **state)
{
	/* what Prometheus 2.x sends */
	assert_true(server__wants_openmetrics(
		"application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
		"version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"));
	assert_true(server__wants_openmetrics("application/openmetrics-text"));
	assert_true(server__wants_openmetrics("application/openmetrics-text; version=0.0.1"));
	/* no header, plain text, curl's default */
	assert_false(server__wants_openmetrics(NULL));
	assert_false(server__wants_openmetrics("text/plain"));
	assert_false(server__wants_openmetrics("*/*"));
	/* refused or preferred less: q-values count */
	assert_false(server__wants_openmetrics("application/openmetrics-text;q=0, text/plain"));
	assert_false(server__wants_openmetrics(
		"text/plain;q=1,application/openmetrics-text;q=0.1"));
	assert_false(server__wants_openmetrics("application/openmetrics-text;q=0.2,*/*;q=0.5"));
	assert_true(server__wants_openmetrics("text/plain;q=0.3, application/openmetrics-text"));
	/* a version we do not speak */
	assert_false(server__wants_openmetrics("application/openmetrics-text;version=2.0.0"));
	/* case and spaces */
	assert_true(server__wants_openmetrics(" Application/OpenMetrics-Text ; q=0.9 ,text/plain;q=0.8"));
}

static void check_time(const char *tz, const char *want)
{
	/* 2026-12-02 06:01:02.345 UTC */
	struct timespec ts = { .tv_sec = 1796191262, .tv_nsec = 345678901 };
	char buf[48];

	/* POSIX zone strings: no tzdata needed */
	setenv("TZ", tz, 1);
	tzset();
	assert_string_equal(cli__rfc3339(&ts, buf, sizeof(buf)), want);
}

static void test_rfc3339_with_offset(void **state)
{
	check_time("UTC0", "2026-12-02T06:01:02.345+00:00");
	check_time("IST-5:30", "2026-12-02T11:31:02.345+05:30");
	check_time("EST5", "2026-12-02T01:01:02.345-05:00");
	unsetenv("TZ");
	tzset();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_openmetrics_negotiation),
		cmocka_unit_test(test_rfc3339_with_offset),
	};

	return cmocka_run_group_tests_name("server", tests, NULL, NULL);
}
