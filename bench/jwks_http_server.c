/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench-jwks-server: serves a realistic JWKS (3 ES256 + 2 RS256 public keys, RFC 7638 kids)
 * through km_http on a loopback port, for bench/jwks-http to compare against nginx.
 *
 *   bench-jwks-server [--port N] [--threads N] [--path P] [--max-age S] --body-out FILE
 *
 * Writes the exact body to FILE, prints one line "port=N etag=E last_modified=T bytes=B" on
 * stdout, then serves until SIGINT or SIGTERM.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>

#include "keymgr/common/b64url.h"
#include "keymgr/common/error.h"
#include "keymgr/http/http_server.h"
#include "keymgr/http/http_util.h"

static void b64(const unsigned char *in, size_t len, char *out)
{
	km_b64url_encode(in, len, out);
}

/* kid = RFC 7638 thumbprint of the required members. */
static void thumbprint(const char *canon, char kid[64])
{
	unsigned char md[32];
	unsigned int mdlen = 0;

	EVP_Digest(canon, strlen(canon), md, &mdlen, EVP_sha256(), NULL);
	b64(md, mdlen, kid);
}

static int bn_param(EVP_PKEY *pk, const char *name, unsigned char *out, int pad)
{
	BIGNUM *bn = NULL;
	int n;

	if (EVP_PKEY_get_bn_param(pk, name, &bn) != 1)
		return -1;
	n = pad > 0 ? BN_bn2binpad(bn, out, pad) : BN_bn2bin(bn, out);
	BN_free(bn);
	return n;
}

static int add_ec(FILE *f, bool first)
{
	unsigned char x[32], y[32];
	char xs[64], ys[64], canon[256], kid[64];
	EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

	if (pk == NULL || bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_X, x, 32) != 32 ||
	    bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_Y, y, 32) != 32) {
		EVP_PKEY_free(pk);
		return -1;
	}
	EVP_PKEY_free(pk);
	b64(x, 32, xs);
	b64(y, 32, ys);
	snprintf(canon, sizeof(canon), "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
		 xs, ys);
	thumbprint(canon, kid);
	fprintf(f, "%s{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\",\"kid\":\"%s\","
		"\"use\":\"sig\",\"alg\":\"ES256\"}", first ? "" : ",", xs, ys, kid);
	return 0;
}

static int add_rsa(FILE *f)
{
	unsigned char n[512];
	char ns[700], canon[800], kid[64];
	int nlen;
	EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);

	if (pk == NULL || (nlen = bn_param(pk, OSSL_PKEY_PARAM_RSA_N, n, 0)) <= 0) {
		EVP_PKEY_free(pk);
		return -1;
	}
	EVP_PKEY_free(pk);
	b64(n, (size_t)nlen, ns);
	snprintf(canon, sizeof(canon), "{\"e\":\"AQAB\",\"kty\":\"RSA\",\"n\":\"%s\"}", ns);
	thumbprint(canon, kid);
	fprintf(f, ",{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\",\"kid\":\"%s\",\"use\":\"sig\","
		"\"alg\":\"RS256\"}", ns, kid);
	return 0;
}

static int make_jwks(char **ret, size_t *len)
{
	FILE *f = open_memstream(ret, len);
	int i, r = 0;

	if (f == NULL)
		return -1;
	fputs("{\"keys\":[", f);
	for (i = 0; i < 3 && r == 0; i++)
		r = add_ec(f, i == 0);
	for (i = 0; i < 2 && r == 0; i++)
		r = add_rsa(f);
	fputs("]}", f);
	if (fclose(f) != 0)
		r = -1;
	return r;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "threads", required_argument, NULL, 't' },
		{ "path", required_argument, NULL, 'P' },
		{ "max-age", required_argument, NULL, 'm' },
		{ "body-out", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	km_http_cfg_t cfg = { .listen_addr = "127.0.0.1", .conn_limit = 4096, .per_ip_limit = 4096 };
	const char *path = "/production/.well-known/jwks.json", *out = NULL;
	unsigned max_age = 300;
	char err[256], etag[KM_ETAG_SIZE];
	char *body = NULL;
	size_t len = 0;
	km_http_t *h = NULL;
	time_t lm = time(NULL);
	sigset_t set;
	FILE *f;
	int c, sig, rc = 1;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'p': cfg.port = (uint16_t)strtoul(optarg, NULL, 10); break;
		case 't': cfg.threads = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'P': path = optarg; break;
		case 'm': max_age = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'o': out = optarg; break;
		default:
			fprintf(stderr, "usage: %s [--port N] [--threads N] [--path P] [--max-age S] "
				"--body-out FILE\n", argv[0]);
			return 2;
		}
	}
	if (out == NULL) {
		fprintf(stderr, "%s: --body-out FILE is required\n", argv[0]);
		return 2;
	}
	/* Block the signals before any thread exists, then wait for them. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	if (make_jwks(&body, &len) != 0 || km_etag_compute(body, len, etag) != KM_EOK) {
		fprintf(stderr, "%s: cannot build the JWKS\n", argv[0]);
		goto out;
	}
	if ((f = fopen(out, "w")) == NULL || fwrite(body, 1, len, f) != len || fclose(f) != 0) {
		fprintf(stderr, "%s: cannot write %s: %s\n", argv[0], out, strerror(errno));
		goto out;
	}
	if (km_http_start(&cfg, &h, err, sizeof(err)) != KM_EOK) {
		fprintf(stderr, "%s: %s\n", argv[0], err);
		goto out;
	}
	if (km_http_publish(h, path, body, len, 1, max_age, lm) != KM_EOK ||
	    km_http_set_health(h, true, NULL) != KM_EOK) {
		fprintf(stderr, "%s: cannot publish %s\n", argv[0], path);
		goto out;
	}
	printf("port=%u etag=%s last_modified=%lld bytes=%zu\n", km_http_port(h), etag,
	       (long long)lm, len);
	fflush(stdout);
	sigwait(&set, &sig);
	rc = 0;
out:
	km_http_free(h);
	free(body);
	return rc;
}
