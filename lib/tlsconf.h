/*
 * TLS settings the daemon and the client library share: Mozilla's
 * "intermediate" profile. TLS 1.3 (whose suites are all AEAD), and for TLS
 * 1.2 only ECDHE key exchange with AES-GCM or ChaCha20-Poly1305: no CBC
 * suite (Lucky13), no static RSA key exchange. Private: not installed.
 */
#ifndef RV_TLSCONF_H
#define RV_TLSCONF_H

#define RV_TLS12_CIPHERS                                             \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

#endif
