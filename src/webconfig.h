/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * webconfig.h - TLS and basic authentication for /metrics, from a web configuration file in
 * the format of the Prometheus exporter-toolkit (--web.config.file), so the same file and the
 * same scrape configuration serve node_exporter and gmemd:
 *
 *   tls_server_config:
 *     cert_file: server.crt       # PEM; relative paths are relative to this file
 *     key_file: server.key
 *   basic_auth_users:
 *     prometheus: $2y$10$...      # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\n')
 *
 * What gmemd does not implement (client certificates, http_server_config, cipher choices) is
 * refused by name rather than ignored: a file that asks for more protection than it would get
 * must not load.
 */
#ifndef GMEM_WEBCONFIG_H
#define GMEM_WEBCONFIG_H
#ifdef __bpf__
#error "user-space only header"
#endif

#include <stdbool.h>
#include <stddef.h>

struct web_config;

/* Parse and check path (certificate and key load together, every hash is bcrypt). 0, or
 * -errno with err saying what and where. */
int webconfig__load(const char *path, struct web_config **out, char *err, size_t errlen);
void webconfig__free(struct web_config *c);

/* The PEM certificate chain and key, or NULL when the file asks for no TLS. */
const char *webconfig__cert(const struct web_config *c);
const char *webconfig__key(const struct web_config *c);
/* Whether requests must authenticate. */
bool webconfig__wants_auth(const struct web_config *c);
/* Whether user:pass is one of basic_auth_users (bcrypt, with a cache of recent successes so a
 * scrape every second does not cost a bcrypt each). Thread-safe. */
bool webconfig__check(struct web_config *c, const char *user, const char *pass);

#endif /* GMEM_WEBCONFIG_H */
