// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* webconfig.c - the exporter-toolkit web configuration file: TLS and basic auth (webconfig.h). */
#include <crypt.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <yaml.h>

#include "webconfig.h"

#define MAX_USERS 256
#define CACHE_SLOTS 16

struct web_user {
	char *name;
	char *hash;
};

struct web_config {
	char *cert_pem;
	char *key_pem;
	struct web_user users[MAX_USERS];
	size_t nusers;
	/* digests of user:password pairs bcrypt accepted lately, keyed by a per-run salt */
	pthread_mutex_t lock;
	unsigned char salt[32];
	unsigned char cache[CACHE_SLOTS][32];
	size_t cache_next;
};

static char *read_file(const char *cfg, const char *path, char *err, size_t errlen,
		       const char *what)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	long n;

	if (!f) {
		snprintf(err, errlen, "%s: %s %s: %s", cfg, what, path, strerror(errno));
		return NULL;
	}
	if (fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || n > (16 << 20) || fseek(f, 0, SEEK_SET))
		n = -1;
	if (n >= 0)
		buf = calloc(1, n + 1);
	if (!buf || fread(buf, 1, n, f) != (size_t)n) {
		snprintf(err, errlen, "%s: %s %s: cannot read it", cfg, what, path);
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

/* path relative to the config file's directory, as the exporter-toolkit resolves it */
static void resolve(const char *cfg, const char *path, char *out, size_t len)
{
	const char *slash = strrchr(cfg, '/');

	if (path[0] == '/' || !slash)
		snprintf(out, len, "%s", path);
	else
		snprintf(out, len, "%.*s/%s", (int)(slash - cfg), cfg, path);
}

static const char *scalar(yaml_document_t *d, yaml_node_t *n)
{
	(void)d;
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

struct parse {
	const char *path;
	yaml_document_t *doc;
	struct web_config *c;
	char *err;
	size_t errlen;
	char cert_file[PATH_MAX], key_file[PATH_MAX];
};

static int fail(struct parse *p, yaml_node_t *at, const char *fmt, const char *what)
{
	int n = snprintf(p->err, p->errlen, "%s:%zu: ", p->path,
			 at ? at->start_mark.line + 1 : (size_t)1);

	if (n >= 0 && (size_t)n < p->errlen)
		snprintf(p->err + n, p->errlen - n, fmt, what);
	return -EINVAL;
}

static int parse_tls(struct parse *p, yaml_node_t *m)
{
	yaml_node_pair_t *pr;

	if (m->type != YAML_MAPPING_NODE)
		return fail(p, m, "%s must be a mapping", "tls_server_config");
	for (pr = m->data.mapping.pairs.start; pr < m->data.mapping.pairs.top; pr++) {
		yaml_node_t *kn = yaml_document_get_node(p->doc, pr->key);
		yaml_node_t *vn = yaml_document_get_node(p->doc, pr->value);
		const char *k = scalar(p->doc, kn), *v = scalar(p->doc, vn);

		if (!k)
			return fail(p, kn, "%s: keys must be names", "tls_server_config");
		if (!v || !*v)
			return fail(p, vn, "tls_server_config.%s must be a path", k);
		if (!strcmp(k, "cert_file"))
			resolve(p->path, v, p->cert_file, sizeof(p->cert_file));
		else if (!strcmp(k, "key_file"))
			resolve(p->path, v, p->key_file, sizeof(p->key_file));
		else
			return fail(p, kn, "tls_server_config.%s is not supported by gmemd (it "
				    "serves cert_file and key_file; client certificates and cipher "
				    "choices are not implemented)", k);
	}
	if (!p->cert_file[0] || !p->key_file[0])
		return fail(p, m, "%s needs both cert_file and key_file", "tls_server_config");
	return 0;
}

static int parse_users(struct parse *p, yaml_node_t *m)
{
	yaml_node_pair_t *pr;

	if (m->type != YAML_MAPPING_NODE)
		return fail(p, m, "%s must be a mapping of user: bcrypt hash", "basic_auth_users");
	for (pr = m->data.mapping.pairs.start; pr < m->data.mapping.pairs.top; pr++) {
		yaml_node_t *kn = yaml_document_get_node(p->doc, pr->key);
		yaml_node_t *vn = yaml_document_get_node(p->doc, pr->value);
		const char *k = scalar(p->doc, kn), *v = scalar(p->doc, vn);
		struct crypt_data cd;
		const char *h;

		if (!k || !*k || strchr(k, ':'))
			return fail(p, kn, "%s: a user name must be a name without ':'",
				    "basic_auth_users");
		if (!v || strncmp(v, "$2", 2))
			return fail(p, vn, "basic_auth_users.%s is not a bcrypt hash ($2y$..., as "
				    "htpasswd -nBC 10 makes)", k);
		memset(&cd, 0, sizeof(cd));
		h = crypt_r("", v, &cd);
		if (!h || h[0] == '*')
			return fail(p, vn, "basic_auth_users.%s: this system's crypt cannot check "
				    "that hash", k);
		if (p->c->nusers == MAX_USERS)
			return fail(p, kn, "%s: too many users", "basic_auth_users");
		p->c->users[p->c->nusers].name = strdup(k);
		p->c->users[p->c->nusers].hash = strdup(v);
		p->c->nusers++;
	}
	return 0;
}

static int check_pair(struct parse *p)
{
	gnutls_certificate_credentials_t cred;
	gnutls_datum_t cert = { (unsigned char *)p->c->cert_pem, strlen(p->c->cert_pem) };
	gnutls_datum_t key = { (unsigned char *)p->c->key_pem, strlen(p->c->key_pem) };
	int r;

	if (gnutls_certificate_allocate_credentials(&cred) < 0) {
		snprintf(p->err, p->errlen, "out of memory");
		return -ENOMEM;
	}
	r = gnutls_certificate_set_x509_key_mem2(cred, &cert, &key, GNUTLS_X509_FMT_PEM, NULL, 0);
	gnutls_certificate_free_credentials(cred);
	if (r < 0) {
		snprintf(p->err, p->errlen, "%s: cert_file %s with key_file %s: %s", p->path,
			 p->cert_file, p->key_file, gnutls_strerror(r));
		return -EINVAL;
	}
	return 0;
}

int webconfig__load(const char *path, struct web_config **out, char *err, size_t errlen)
{
	struct parse p = { .path = path, .err = err, .errlen = errlen };
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_node_t *root;
	yaml_node_pair_t *pr;
	FILE *f;
	int e = 0;

	*out = NULL;
	f = fopen(path, "r");
	if (!f) {
		e = -errno;
		snprintf(err, errlen, "--web.config.file %s: %s", path, strerror(-e));
		return e;
	}
	p.c = calloc(1, sizeof(*p.c));
	if (!p.c || !yaml_parser_initialize(&parser)) {
		fclose(f);
		free(p.c);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&p.c->lock, NULL);
	yaml_parser_set_input_file(&parser, f);
	if (!yaml_parser_load(&parser, &doc)) {
		snprintf(err, errlen, "%s:%zu: not YAML: %s", path, parser.problem_mark.line + 1,
			 parser.problem ? parser.problem : "?");
		yaml_parser_delete(&parser);
		fclose(f);
		webconfig__free(p.c);
		return -EINVAL;
	}
	p.doc = &doc;
	root = yaml_document_get_root_node(&doc);
	if (root && root->type == YAML_MAPPING_NODE) {
		for (pr = root->data.mapping.pairs.start; !e && pr < root->data.mapping.pairs.top;
		     pr++) {
			yaml_node_t *kn = yaml_document_get_node(&doc, pr->key);
			yaml_node_t *vn = yaml_document_get_node(&doc, pr->value);
			const char *k = scalar(&doc, kn);

			if (k && !strcmp(k, "tls_server_config"))
				e = parse_tls(&p, vn);
			else if (k && !strcmp(k, "basic_auth_users"))
				e = parse_users(&p, vn);
			else
				e = fail(&p, kn, "%s is not supported by gmemd (it reads "
					 "tls_server_config and basic_auth_users)", k ? k : "this key");
		}
	} else if (root && !(root->type == YAML_SCALAR_NODE && !*scalar(&doc, root))) {
		e = fail(&p, root, "%s", "the file must be a mapping (tls_server_config, "
			 "basic_auth_users)");
	}
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	fclose(f);
	if (!e && p.cert_file[0]) {
		p.c->cert_pem = read_file(path, p.cert_file, err, errlen, "cert_file");
		p.c->key_pem = p.c->cert_pem ? read_file(path, p.key_file, err, errlen, "key_file") :
					       NULL;
		e = p.c->key_pem ? check_pair(&p) : -EINVAL;
	}
	if (!e && gnutls_rnd(GNUTLS_RND_NONCE, p.c->salt, sizeof(p.c->salt)) < 0) {
		snprintf(err, errlen, "no random numbers for the auth cache");
		e = -EIO;
	}
	if (e) {
		webconfig__free(p.c);
		return e;
	}
	*out = p.c;
	return 0;
}

void webconfig__free(struct web_config *c)
{
	size_t i;

	if (!c)
		return;
	for (i = 0; i < c->nusers; i++) {
		free(c->users[i].name);
		free(c->users[i].hash);
	}
	if (c->key_pem)
		gnutls_memset(c->key_pem, 0, strlen(c->key_pem));
	free(c->key_pem);
	free(c->cert_pem);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

const char *webconfig__cert(const struct web_config *c)
{
	return c ? c->cert_pem : NULL;
}

const char *webconfig__key(const struct web_config *c)
{
	return c ? c->key_pem : NULL;
}

bool webconfig__wants_auth(const struct web_config *c)
{
	return c && c->nusers;
}

static void digest(const struct web_config *c, const char *user, const char *pass,
		   unsigned char out[32])
{
	size_t ul = strlen(user), pl = strlen(pass), n = sizeof(c->salt) + ul + 1 + pl;
	unsigned char *buf = malloc(n);

	memset(out, 0, 32);
	if (!buf)
		return;
	memcpy(buf, c->salt, sizeof(c->salt));
	memcpy(buf + sizeof(c->salt), user, ul + 1);
	memcpy(buf + sizeof(c->salt) + ul + 1, pass, pl);
	gnutls_hash_fast(GNUTLS_DIG_SHA256, buf, n, out);
	gnutls_memset(buf, 0, n);
	free(buf);
}

static bool same(const unsigned char *a, const unsigned char *b, size_t n)
{
	unsigned char d = 0;
	size_t i;

	for (i = 0; i < n; i++)
		d |= a[i] ^ b[i];
	return !d;
}

bool webconfig__check(struct web_config *c, const char *user, const char *pass)
{
	const struct web_user *u = NULL;
	unsigned char dg[32];
	struct crypt_data *cd;
	bool ok = false;
	const char *h;
	size_t i;

	if (!c || !user || !pass)
		return false;
	for (i = 0; i < c->nusers; i++)
		if (!strcmp(c->users[i].name, user))
			u = &c->users[i];
	if (!u)
		return false;
	digest(c, user, pass, dg);
	pthread_mutex_lock(&c->lock);
	for (i = 0; i < CACHE_SLOTS && !ok; i++)
		ok = same(c->cache[i], dg, sizeof(dg));
	pthread_mutex_unlock(&c->lock);
	if (ok)
		return true;
	cd = calloc(1, sizeof(*cd));
	if (!cd)
		return false;
	h = crypt_r(pass, u->hash, cd);
	ok = h && strlen(h) == strlen(u->hash) && same((const unsigned char *)h,
						       (const unsigned char *)u->hash, strlen(h));
	free(cd);
	if (ok) {
		pthread_mutex_lock(&c->lock);
		memcpy(c->cache[c->cache_next], dg, sizeof(dg));
		c->cache_next = (c->cache_next + 1) % CACHE_SLOTS;
		pthread_mutex_unlock(&c->lock);
	}
	return ok;
}
