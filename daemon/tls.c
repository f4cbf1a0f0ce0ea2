/* The daemon's TLS context and accepted TLS connections. */
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>

#include "config.h"
#include "log.h"
#include "tls.h"
#include "tlsconf.h"

static SSL_CTX *server_ctx; /* what new TLS connections accept with */

const char *
tls_error(void)
{
	static char buf[256];
	unsigned long e = ERR_get_error();

	if (e == 0)
		return "unknown TLS error";
	ERR_error_string_n(e, buf, sizeof buf);
	ERR_clear_error();
	return buf;
}

struct tls_context *
tls_context_load(const struct config *cfg)
{
	SSL_CTX *ctx;

	if (cfg->tls_cert == NULL || cfg->tls_key == NULL) {
		log_error("--listen-tls needs --tls-cert and --tls-key");
		return NULL;
	}
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, RV_TLS12_CIPHERS) != 1) {
		log_error("TLS: cannot set up: %s", tls_error());
		goto fail;
	}
	/* Renegotiation is a DoS lever and TLS 1.3 has none; compression leaks (CRIME). */
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
					 SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1) {
		log_error("--tls-cert %s: %s", cfg->tls_cert, tls_error());
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		log_error("--tls-key %s: %s", cfg->tls_key, tls_error());
		goto fail;
	}
	if (cfg->tls_client_ca != NULL) {
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->tls_client_ca);
		if (names == NULL ||
		    SSL_CTX_load_verify_locations(ctx, cfg->tls_client_ca, NULL) != 1) {
			sk_X509_NAME_pop_free(names, X509_NAME_free);
			log_error("--tls-client-ca %s: %s", cfg->tls_client_ca, tls_error());
			goto fail;
		}
		SSL_CTX_set_client_CA_list(ctx, names);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	}
	return (struct tls_context *)ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

void
tls_context_use(struct tls_context *c)
{
	/* Connections hold references of their own: they keep the old context. */
	SSL_CTX_free(server_ctx);
	server_ctx = (SSL_CTX *)c;
}

void
tls_context_free(struct tls_context *c)
{
	SSL_CTX_free((SSL_CTX *)c);
}

int
tls_init(void)
{
	struct tls_context *c;

	if (config.nlisten_tls == 0 && config.nlisten_wss == 0 && config.tls_cert == NULL &&
	    config.tls_key == NULL)
		return 0; /* (systemd may pass a TLS socket: a certificate alone loads) */
	c = tls_context_load(&config);
	if (c == NULL)
		return -1;
	tls_context_use(c);
	return 0;
}

bool
tls_loaded(void)
{
	return server_ctx != NULL;
}

bool
tls_needs_context(void)
{
	if (server_ctx != NULL)
		return false;
	log_error("a TLS socket needs --tls-cert and --tls-key");
	return true;
}

void
tls_finish(void)
{
	tls_context_use(NULL);
}

struct bufferevent *
tls_accept(struct event_base *base, evutil_socket_t fd)
{
	SSL *ssl = SSL_new(server_ctx);
	struct bufferevent *bev;

	if (ssl == NULL) {
		evutil_closesocket(fd);
		return NULL;
	}
	bev = bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
					     BEV_OPT_CLOSE_ON_FREE);
	/*
	 * On failure (out of memory) libevent 2.1 frees ssl on some paths and not
	 * on others, and never closes fd: leak ssl rather than free it twice.
	 */
	if (bev == NULL)
		evutil_closesocket(fd);
	return bev;
}
