/* SPDX-License-Identifier: Apache-2.0 */
/* km_token_uri: RFC 7512 URIs that p11-kit parses back to the same token and object. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <p11-kit/uri.h>

#include "keymgr/common/error.h"
#include "pkcs11/token.h"

static const uint8_t id[] = { 'K', 'M', 'G', 'R', 0x00, 0xff, 0x3b, 0x25, 0x2f };

static void test_uri_round_trips(void **state)
{
	char *text = NULL;
	(void)state;
	assert_int_equal(km_token_uri("my token;x=1/%", "0123abcd", id, sizeof(id), &text),
	                 KM_EOK);
	assert_non_null(text);
	assert_true(strncmp(text, "pkcs11:", 7) == 0);
	assert_non_null(strstr(text, "id=%4B%4D%47%52%00%FF%3B%25%2F"));
	assert_non_null(strstr(text, "type=private"));
	assert_non_null(strstr(text, "serial=0123abcd"));
	assert_null(strstr(text, "pin"));
	/* The label's ';', '/' and '%' are encoded: parsing gives back the exact label. */
	P11KitUri *uri = p11_kit_uri_new();
	assert_int_equal(p11_kit_uri_parse(text, P11_KIT_URI_FOR_OBJECT_ON_TOKEN, uri),
	                 P11_KIT_URI_OK);
	CK_TOKEN_INFO *ti = p11_kit_uri_get_token_info(uri);
	assert_memory_equal(ti->label, "my token;x=1/%", 14);
	for (size_t i = 14; i < sizeof(ti->label); i++)
		assert_int_equal(ti->label[i], ' ');
	CK_ATTRIBUTE *a = p11_kit_uri_get_attribute(uri, CKA_ID);
	assert_non_null(a);
	assert_int_equal(a->ulValueLen, sizeof(id));
	assert_memory_equal(a->pValue, id, sizeof(id));
	a = p11_kit_uri_get_attribute(uri, CKA_CLASS);
	assert_non_null(a);
	assert_int_equal(*(CK_OBJECT_CLASS *)a->pValue, CKO_PRIVATE_KEY);
	p11_kit_uri_free(uri);
	free(text);
}

static void test_uri_label_or_serial_alone(void **state)
{
	char *text = NULL;
	(void)state;
	assert_int_equal(km_token_uri(NULL, "0123abcd", id, 4, &text), KM_EOK);
	assert_null(strstr(text, "token="));
	free(text);
	assert_int_equal(km_token_uri("t", NULL, id, 4, &text), KM_EOK);
	assert_null(strstr(text, "serial="));
	free(text);
}

static void test_uri_bad_input(void **state)
{
	char *text = (char *)0x1;
	(void)state;
	assert_int_equal(km_token_uri(NULL, NULL, id, 4, &text), KM_EINVAL);
	assert_int_equal(km_token_uri("t", NULL, id, 0, &text), KM_EINVAL);
	assert_int_equal(km_token_uri("t", NULL, NULL, 4, &text), KM_EINVAL);
	assert_int_equal(km_token_uri("", NULL, id, 4, &text), KM_EINVAL);
	assert_int_equal(km_token_uri("a-label-longer-than-thirty-two-bytes", NULL, id, 4, &text),
	                 KM_EINVAL);
	assert_int_equal(km_token_uri("t", "serial-longer-than-16", id, 4, &text), KM_EINVAL);
	assert_ptr_equal(text, (char *)0x1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uri_round_trips),
		cmocka_unit_test(test_uri_label_or_serial_alone),
		cmocka_unit_test(test_uri_bad_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
