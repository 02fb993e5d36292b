/* Unit tests for gateway/core/log.c's log_limit: one line per period, the
 * rest counted and reported by the next one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "log.h"

#define SEC 1000000000ull

static void test_limit_one_per_period(void **state)
{
	struct log_limit l = { 0 };
	uint64_t held = 99;

	/* the first prints, even at a clock reading under one period */
	assert_true(log_limit_ok(&l, SEC / 2, 10 * SEC, &held));
	assert_int_equal(held, 0);
	for (int i = 0; i < 5; i++)	/* within the period: held back */
		assert_false(log_limit_ok(&l, SEC / 2 + (uint64_t)i * SEC, 10 * SEC, &held));
	assert_false(log_limit_ok(&l, SEC / 2 + 10 * SEC - 1, 10 * SEC, &held));
	assert_true(log_limit_ok(&l, SEC / 2 + 10 * SEC, 10 * SEC, &held));
	assert_int_equal(held, 6);	/* the next one says how many */
	assert_false(log_limit_ok(&l, SEC / 2 + 11 * SEC, 10 * SEC, &held));
	assert_true(log_limit_ok(&l, SEC / 2 + 30 * SEC, 10 * SEC, &held));
	assert_int_equal(held, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_limit_one_per_period),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
