/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The key server of the jku and x5u forgeries: keymgr's own HTTP server (keymgr/http/) on
 * 127.0.0.1 and an ephemeral port, serving the run key as a JWKS and as a certificate under
 * a random prefix for the length of the run. Its verifier table counts who fetched what: a
 * fetch is an SSRF signal even when the endpoint then refuses the token.
 */
#include <openssl/rand.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keymgr/common/error.h"
#include "keymgr/common/hex.h"
#include "keymgr/http/http_server.h"
#include "keymgr/probe/probe_int.h"

struct probe_keyserver {
	km_http_t *http;
	char jku_path[96], x5u_path[96];
};

int probe_keyserver_start(const char *jwks, const char *cert_pem, probe_keyserver_t **ret,
                          char jku_url[256], char x5u_url[256], char *err, size_t errlen)
{
	km_http_cfg_t cfg = { .listen_addr = "127.0.0.1", .port = 0, .threads = 1,
	                      .conn_limit = 32, .per_ip_limit = 32, .conn_timeout = 5 };
	uint8_t raw[12];
	char run[2 * sizeof(raw) + 1];
	probe_keyserver_t *s = calloc(1, sizeof(*s));
	int r;

	if (s == NULL)
		return KM_ENOMEM;
	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		free(s);
		return KM_ECRYPTO;
	}
	km_hex_encode(raw, sizeof(raw), run, sizeof(run));
	snprintf(s->jku_path, sizeof(s->jku_path), "/keymgr-probe/%s/jwks.json", run);
	snprintf(s->x5u_path, sizeof(s->x5u_path), "/keymgr-probe/%s/cert.pem", run);
	if ((r = km_http_start(&cfg, &s->http, err, errlen)) != KM_EOK ||
	    (r = km_http_publish(s->http, s->jku_path, jwks, strlen(jwks), 1, 0, time(NULL))) !=
	    KM_EOK ||
	    (r = km_http_publish(s->http, s->x5u_path, cert_pem, strlen(cert_pem), 1, 0,
	                         time(NULL))) != KM_EOK) {
		if (err != NULL && err[0] == '\0')
			snprintf(err, errlen, "the loopback key server: %s", km_strerror(r));
		probe_keyserver_free(s);
		return r;
	}
	unsigned port = km_http_port(s->http);
	snprintf(jku_url, 256, "http://127.0.0.1:%u%s", port, s->jku_path);
	snprintf(x5u_url, 256, "http://127.0.0.1:%u%s", port, s->x5u_path);
	*ret = s;
	return KM_EOK;
}

uint64_t probe_keyserver_fetches(probe_keyserver_t *s, bool x5u)
{
	km_http_verifier_t *rows = NULL;
	size_t n = 0;
	uint64_t total = 0;
	if (s == NULL || km_http_verifiers(s->http, x5u ? s->x5u_path : s->jku_path, &rows, &n) !=
	    KM_EOK)
		return 0;
	for (size_t i = 0; i < n; i++)
		total += rows[i].fetches;
	free(rows);
	return total;
}

void probe_keyserver_free(probe_keyserver_t *s)
{
	if (s == NULL)
		return;
	km_http_free(s->http);
	free(s);
}
