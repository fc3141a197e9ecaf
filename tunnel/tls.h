/* SPDX-License-Identifier: MIT */
/* TLS 1.3 over a non-blocking socket, wrapped the way OpenBSD's libtls does. */
#ifndef TUNLAB_TLS_H
#define TUNLAB_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Internal to tunnel/. No OpenSSL type crosses this header: a tls_ctx is
 * the configuration (certificates, CA, verification policy) shared by all
 * connections of a tunnel, a tls_conn one connection on one socket.
 * I/O calls return like read(2): bytes, 0 on a clean close_notify, -1 on
 * an error (tls_conn_error() says which), or one of the WANT values,
 * which ask the caller to poll and call again with the same arguments.
 */
enum {
	TLS_WANT_POLLIN = -2,
	TLS_WANT_POLLOUT = -3,
};

struct tls_ctx;
struct tls_conn;

/* Records seen on the wire, counted for the owner of the connection. */
struct tls_record_counters {
	uint64_t written, read;
};

/*
 * NULL with err set ("--cert /x/y: no such file") on failure. crl_file
 * (NULL: none) holds PEM CRLs: then every certificate of the peer's chain
 * below the root needs its issuer's CRL there and must not be revoked.
 */
struct tls_ctx *tls_ctx_new(bool server, const char *cert_file, const char *key_file,
			    const char *ca_file, const char *crl_file, char *err, size_t err_len);
void tls_ctx_free(struct tls_ctx *ctx);
bool tls_ctx_has_crl(const struct tls_ctx *ctx);
/*
 * Rereads the CA and CRL files for handshakes from now on. All or nothing:
 * on failure (-EINVAL, err set) the previous ones stay in force.
 */
int tls_ctx_reload(struct tls_ctx *ctx, char *err, size_t err_len);
/*
 * Server: issue and accept TLS 1.3 session tickets sealed with the keys of
 * path, one or two lines of 160 hex digits (current, then previous; '#'
 * comments). The file must not be open to group or other (-EPERM). All
 * or nothing: on failure (err set, never quoting a key) the keys in force
 * stay. tls_ctx_reload_ticket_keys() rereads the same file (0 without one).
 */
int tls_ctx_set_ticket_keys(struct tls_ctx *ctx, const char *path, char *err, size_t err_len);
int tls_ctx_reload_ticket_keys(struct tls_ctx *ctx, char *err, size_t err_len);

/*
 * A connection on connected socket fd (the caller keeps owning fd).
 * Clients verify the server certificate against server_name: an IP
 * literal is matched against IP SANs, a name against DNS SANs and sent as
 * SNI. counters must outlive the connection. NULL with errno on failure.
 */
struct tls_conn *tls_conn_new(struct tls_ctx *ctx, int fd, const char *server_name,
			      struct tls_record_counters *counters);
void tls_conn_free(struct tls_conn *conn);

/* 0 once the handshake is complete, else like tls_read. */
int tls_handshake(struct tls_conn *conn);
ssize_t tls_read(struct tls_conn *conn, void *buf, size_t len);
ssize_t tls_write(struct tls_conn *conn, const void *buf, size_t len);
/* Decrypted or raw bytes held inside the library: read again before polling. */
bool tls_pending(struct tls_conn *conn);
/*
 * True when a read now would find nothing: OpenSSL holds no bytes and
 * the socket's last recv came back short. Another tls_read() would only
 * return TLS_WANT_POLLIN, one syscall per wakeup for nothing.
 */
bool tls_drained(struct tls_conn *conn);
/* Sends close_notify once, without waiting for the peer's; never blocks. */
void tls_close(struct tls_conn *conn);

/*
 * The peer certificate's common name; -ENOENT, -ENOTUNIQ when the subject
 * has more than one, or -EINVAL if unusable.
 */
int tls_peer_cn(struct tls_conn *conn, char *out, size_t out_len);
/*
 * Checks the established peer's chain again, as a handshake would now
 * (after tls_ctx_reload). 0 if it still passes, -EPERM with the reason in
 * tls_conn_error() if not, -ENOMEM.
 */
int tls_conn_reverify(struct tls_conn *conn);
/* The handshake resumed a session (no certificates were exchanged). */
bool tls_conn_resumed(const struct tls_conn *conn);
/*
 * RFC 8446 7.5's exporter of the established connection: len bytes for
 * label and context (SSL_export_keying_material). 0 or -EIO.
 */
int tls_export(struct tls_conn *conn, const char *label, const uint8_t *context,
	       size_t context_len, uint8_t *out, size_t len);
/* The reason of the last -1, in words. */
const char *tls_conn_error(const struct tls_conn *conn);

#endif
