// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Unit tests for the exporter's content negotiation (src/server.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_openmetrics_negotiation),
	};

	return cmocka_run_group_tests_name("server", tests, NULL, NULL);
}
