/* The daemon's TLS context and accepted TLS connections. */
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>

#include "config.h"
#include "log.h"
#include "tls.h"

static SSL_CTX *ctx;

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

int
tls_init(void)
{
	if (config.nlisten_tls == 0)
		return 0;
	if (config.tls_cert == NULL || config.tls_key == NULL) {
		log_error("--listen-tls needs --tls-cert and --tls-key");
		return -1;
	}
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		log_error("TLS: cannot set up: %s", tls_error());
		return -1;
	}
	/* Renegotiation is a DoS lever and TLS 1.3 has none; compression leaks (CRIME). */
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
					 SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_use_certificate_chain_file(ctx, config.tls_cert) != 1) {
		log_error("--tls-cert %s: %s", config.tls_cert, tls_error());
		return -1;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, config.tls_key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		log_error("--tls-key %s: %s", config.tls_key, tls_error());
		return -1;
	}
	if (config.tls_client_ca != NULL) {
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(config.tls_client_ca);
		if (names == NULL ||
		    SSL_CTX_load_verify_locations(ctx, config.tls_client_ca, NULL) != 1) {
			sk_X509_NAME_pop_free(names, X509_NAME_free);
			log_error("--tls-client-ca %s: %s", config.tls_client_ca, tls_error());
			return -1;
		}
		SSL_CTX_set_client_CA_list(ctx, names);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	}
	return 0;
}

void
tls_finish(void)
{
	SSL_CTX_free(ctx);
	ctx = NULL;
}

struct bufferevent *
tls_accept(struct event_base *base, evutil_socket_t fd)
{
	SSL *ssl = SSL_new(ctx);
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
