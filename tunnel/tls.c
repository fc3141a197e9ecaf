// SPDX-License-Identifier: MIT
/* TLS 1.3 over a non-blocking socket, wrapped the way OpenBSD's libtls does. */

/*
 * Everything OpenSSL stays in this file. Policy: TLS 1.3 only, both sides
 * present a certificate chaining to --ca, the server requires one, the
 * client checks the server's name.
 *
 * Resumption (issue 16): a server given ticket keys (a file both servers
 * of a pair read) issues one stateless TLS 1.3 ticket per handshake,
 * sealed by OpenSSL under the file's current key; it opens tickets under
 * the current or the previous key, so a client resumes on either server.
 * Without ticket keys no ticket is issued. A ticket holds the client's
 * certificate, not its chain, and a resumed handshake runs no chain
 * verification: the server checks the ticket's certificate against the
 * current CA and CRL when it opens it (ticket_decrypted) and falls back to
 * a full handshake if it fails, and the caller checks the name against
 * the peers file as after any handshake (tls_peer_cn gives the ticket's
 * certificate). The client keeps the last session it was given and offers
 * it only to a server expected to carry the same name: a resumed
 * handshake shows no certificate, so the name check of the first one is
 * all it has.
 *
 * A small socket BIO of our own replaces OpenSSL's: it sends with
 * MSG_NOSIGNAL, so a peer that resets never raises SIGPIPE in a program
 * that forgot to ignore it, and it keeps the errno of the failing call,
 * which OpenSSL might otherwise clobber before we read it.
 *
 * Revocation: with a CRL file, every certificate of the peer's chain but
 * the root must be covered by a CRL of its issuer in that file
 * (X509_V_FLAG_CRL_CHECK_ALL): a CA whose CRL is missing, or a CRL past its
 * nextUpdate, refuses the peer (fail closed). tls_ctx_reload() builds a
 * new store from --ca and --crl and swaps it in only when both load;
 * tls_conn_reverify() runs the check a new connection would get on an
 * established one.
 *
 * Identity is the certificate's one common name: a subject with two CNs
 * is refused by both ends in the verify callback, because tunlab would
 * read one and OpenSSL's own name checks another.
 *
 * Read-ahead with a large read buffer lets one recv() fetch several
 * records; the cost is that decrypted or raw bytes can wait inside
 * OpenSSL while the socket is not readable, hence tls_pending().
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tls.h"

/* Several 16 KiB records per recv(); the default buffer holds one. */
enum { TLS_READ_BUFFER_BYTES = 128 * 1024 };

struct tls_ctx {
	SSL_CTX *ssl_ctx;
	BIO_METHOD *bio_method;
	bool server;
	char *ca_file, *crl_file; /* kept for tls_ctx_reload() */
	char *ticket_file;        /* server: --ticket-keys, kept for reloads */
	struct tls_ticket_keys *tickets; /* server: NULL issues no tickets */
	SSL_SESSION *last_session; /* client: offered on the next connection */
	char last_session_name[256]; /* ...to a server expected to carry this name */
};

struct tls_conn {
	SSL *ssl;
	struct tls_ctx *ctx;
	char server_name[256]; /* client: the name the server was checked against */
	int fd;
	int sys_errno;   /* of the last failed send/recv */
	bool eof;        /* recv returned 0 */
	bool short_read; /* the last recv got less than asked: the socket was empty then */
	bool fatal;      /* no more SSL_* calls but free, not even shutdown */
	bool shut;       /* close_notify sent */
	const char *verify_note; /* why our verify callback refused, or NULL */
	char error[256];
};

/* Finds the tls_conn of an SSL from inside OpenSSL's callbacks. */
static int conn_ex_index = -1;

/* ---- the socket BIO ---- */

static int bio_sock_write(BIO *bio, const char *buf, int len)
{
	struct tls_conn *conn = BIO_get_data(bio);
	ssize_t n;

	BIO_clear_retry_flags(bio);
	n = send(conn->fd, buf, (size_t)len, MSG_NOSIGNAL);
	if (n < 0) {
		conn->sys_errno = errno;
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			BIO_set_retry_write(bio);
	}
	return (int)n;
}

static int bio_sock_read(BIO *bio, char *buf, int len)
{
	struct tls_conn *conn = BIO_get_data(bio);
	ssize_t n;

	BIO_clear_retry_flags(bio);
	n = recv(conn->fd, buf, (size_t)len, 0);
	if (n < 0) {
		conn->sys_errno = errno;
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			BIO_set_retry_read(bio);
	} else if (n == 0) {
		conn->eof = true;
	}
	conn->short_read = n > 0 && n < len;
	return (int)n;
}

static int bio_sock_puts(BIO *bio, const char *str)
{
	return bio_sock_write(bio, str, (int)strlen(str));
}

static long bio_sock_ctrl(BIO *bio, int cmd, long num, void *ptr)
{
	struct tls_conn *conn = BIO_get_data(bio);

	(void)num;
	(void)ptr;
	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;
	case BIO_CTRL_EOF:
		return conn && conn->eof;
	default:
		return 0;
	}
}

static BIO_METHOD *bio_sock_method_new(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "tunlab socket");

	if (!m)
		return NULL;
	if (!BIO_meth_set_write(m, bio_sock_write) || !BIO_meth_set_read(m, bio_sock_read) ||
	    !BIO_meth_set_puts(m, bio_sock_puts) || !BIO_meth_set_ctrl(m, bio_sock_ctrl)) {
		BIO_meth_free(m);
		return NULL;
	}
	return m;
}

/* ---- errors ---- */

static const char *ssl_reason(unsigned long e, char *buf, size_t len)
{
	const char *reason = ERR_reason_error_string(e);

	if (reason)
		return reason;
	ERR_error_string_n(e, buf, len);
	return buf;
}

/* The first queued OpenSSL error in words, or fallback if the queue is empty. */
static void ssl_error_text(char *out, size_t out_len, const char *fallback)
{
	char buf[128];
	unsigned long e = ERR_peek_error();

	if (!e)
		snprintf(out, out_len, "%s", fallback);
	else
		snprintf(out, out_len, "%s", ssl_reason(e, buf, sizeof(buf)));
}

static void conn_set_ssl_error(struct tls_conn *conn)
{
	unsigned long e = ERR_peek_error();
	char buf[128];
	long verify;

	if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
		snprintf(conn->error, sizeof(conn->error), "peer closed without close_notify");
		return;
	}
	if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
		verify = SSL_get_verify_result(conn->ssl);
		snprintf(conn->error, sizeof(conn->error), "certificate verify failed: %s",
			 conn->verify_note ? conn->verify_note : X509_verify_cert_error_string(verify));
		return;
	}
	if (!e) {
		snprintf(conn->error, sizeof(conn->error), "TLS failure without a reason");
		return;
	}
	snprintf(conn->error, sizeof(conn->error), "%s", ssl_reason(e, buf, sizeof(buf)));
}

static void conn_set_sys_error(struct tls_conn *conn, int ret)
{
	if (ret == 0 || conn->eof || conn->sys_errno == 0)
		snprintf(conn->error, sizeof(conn->error), "peer closed without close_notify");
	else
		snprintf(conn->error, sizeof(conn->error), "%s", strerror(conn->sys_errno));
}

/* The one place SSL_get_error() is interpreted. */
static int conn_result(struct tls_conn *conn, int ret)
{
	switch (SSL_get_error(conn->ssl, ret)) {
	case SSL_ERROR_WANT_READ:
		return TLS_WANT_POLLIN;
	case SSL_ERROR_WANT_WRITE:
		return TLS_WANT_POLLOUT;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		conn->fatal = true;
		if (ERR_peek_error())
			conn_set_ssl_error(conn);
		else
			conn_set_sys_error(conn, ret);
		return -1;
	case SSL_ERROR_SSL:
		conn->fatal = true;
		conn_set_ssl_error(conn);
		return -1;
	default:
		conn->fatal = true;
		snprintf(conn->error, sizeof(conn->error), "unexpected TLS state");
		return -1;
	}
}

/* ---- configuration ---- */

static int file_usable(const char *flag, const char *path, char *err, size_t err_len)
{
	int saved;

	if (!path || !*path) {
		snprintf(err, err_len, "%s is required", flag);
		return -EINVAL;
	}
	if (access(path, R_OK) == 0)
		return 0;
	saved = errno;
	if (saved == ENOENT)
		snprintf(err, err_len, "%s %s: no such file", flag, path);
	else
		snprintf(err, err_len, "%s %s: %s", flag, path, strerror(saved));
	return -saved;
}

/* Never prompt for a passphrase on the terminal: encrypted keys are refused. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

static EVP_PKEY *load_key(const char *path)
{
	BIO *bio = BIO_new_file(path, "r");
	EVP_PKEY *key;

	if (!bio)
		return NULL;
	key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	return key;
}

static int load_identity(SSL_CTX *ctx, const char *cert_file, const char *key_file,
			 char *err, size_t err_len)
{
	char reason[128];
	EVP_PKEY *key;
	int ret = -EINVAL;

	if (file_usable("--cert", cert_file, err, err_len) < 0 ||
	    file_usable("--key", key_file, err, err_len) < 0)
		return -EINVAL;
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		ssl_error_text(reason, sizeof(reason), "unreadable");
		snprintf(err, err_len, "--cert %s: not a PEM certificate (%s)", cert_file, reason);
		return -EINVAL;
	}
	key = load_key(key_file);
	if (!key) {
		ssl_error_text(reason, sizeof(reason), "unreadable");
		snprintf(err, err_len, "--key %s: not an unencrypted PEM private key (%s)",
			 key_file, reason);
		return -EINVAL;
	}
	if (X509_check_private_key(SSL_CTX_get0_certificate(ctx), key) != 1)
		snprintf(err, err_len, "--key does not match --cert");
	else if (SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1)
		snprintf(err, err_len, "--key does not match --cert");
	else
		ret = 0;
	EVP_PKEY_free(key);
	return ret;
}

/* Adds every CRL of crl_file to store; the count, or -EINVAL with err set. */
static int load_crls(X509_STORE *store, const char *crl_file, char *err, size_t err_len)
{
	STACK_OF(X509_INFO) *infos;
	char reason[128];
	BIO *bio;
	int i, count = 0;

	if (file_usable("--crl", crl_file, err, err_len) < 0)
		return -EINVAL;
	bio = BIO_new_file(crl_file, "r");
	infos = bio ? PEM_X509_INFO_read_bio(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	for (i = 0; infos && i < sk_X509_INFO_num(infos); i++) {
		X509_INFO *info = sk_X509_INFO_value(infos, i);

		if (info->crl && X509_STORE_add_crl(store, info->crl) == 1)
			count++;
	}
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	if (count > 0)
		return count;
	ssl_error_text(reason, sizeof(reason), "no CRL in it");
	snprintf(err, err_len, "--crl %s: no PEM CRL in it (%s)", crl_file, reason);
	return -EINVAL;
}

/* A certificate store of --ca, and with crl_file its CRLs checked for the whole chain. */
static X509_STORE *store_new(const char *ca_file, const char *crl_file, char *err, size_t err_len)
{
	X509_STORE *store = X509_STORE_new();
	char reason[128];

	if (!store) {
		snprintf(err, err_len, "out of memory");
		return NULL;
	}
	if (file_usable("--ca", ca_file, err, err_len) < 0)
		goto err_free;
	if (X509_STORE_load_file(store, ca_file) != 1) {
		ssl_error_text(reason, sizeof(reason), "unreadable");
		snprintf(err, err_len, "--ca %s: no PEM certificate in it (%s)", ca_file, reason);
		goto err_free;
	}
	if (!crl_file)
		return store;
	if (load_crls(store, crl_file, err, err_len) < 0)
		goto err_free;
	X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
	return store;

err_free:
	X509_STORE_free(store);
	return NULL;
}

static int load_ca(struct tls_ctx *ctx, char *err, size_t err_len)
{
	STACK_OF(X509_NAME) *names;
	X509_STORE *store = store_new(ctx->ca_file, ctx->crl_file, err, err_len);

	if (!store)
		return -EINVAL;
	SSL_CTX_set_cert_store(ctx->ssl_ctx, store);
	if (!ctx->server)
		return 0;
	/* Tells clients which CA we accept; they pick their certificate by it. */
	names = SSL_load_client_CA_file(ctx->ca_file);
	if (names)
		SSL_CTX_set_client_CA_list(ctx->ssl_ctx, names);
	return 0;
}

static void msg_callback(int write_p, int version, int content_type, const void *buf,
			 size_t len, SSL *ssl, void *arg)
{
	struct tls_record_counters *counters = arg;

	(void)version;
	(void)buf;
	(void)len;
	(void)ssl;
	if (content_type != SSL3_RT_HEADER || !counters)
		return;
	if (write_p)
		counters->written++;
	else
		counters->read++;
}

#define TLS_CIPHERSUITES \
	"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

/* How many common names a subject holds. */
static int cn_count(const X509_NAME *subject)
{
	int n = 0, pos = -1;

	while ((pos = X509_NAME_get_index_by_NID(subject, NID_commonName, pos)) >= 0)
		n++;
	return n;
}

/*
 * OpenSSL's chain checks stand; on top, the peer's own certificate must
 * not carry two common names. The note names the reason in our log, and
 * the peer gets a bad_certificate alert.
 */
static int verify_callback(int ok, X509_STORE_CTX *store_ctx)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(store_ctx, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct tls_conn *conn = ssl ? SSL_get_ex_data(ssl, conn_ex_index) : NULL;
	X509 *cert = X509_STORE_CTX_get_current_cert(store_ctx);

	if (!ok || X509_STORE_CTX_get_error_depth(store_ctx) != 0 || !cert)
		return ok;
	if (cn_count(X509_get_subject_name(cert)) <= 1)
		return ok;
	if (conn)
		conn->verify_note = "certificate has more than one common name";
	X509_STORE_CTX_set_error(store_ctx, X509_V_ERR_APPLICATION_VERIFICATION);
	return 0;
}

struct tls_ticket_keys;
static int session_received(SSL *ssl, SSL_SESSION *sess);
static void conn_offer_session(struct tls_conn *conn);
static void ticket_keys_free(struct tls_ticket_keys *keys);

static int ctx_policy(SSL_CTX *ctx, bool server)
{
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1)
		return -EINVAL;
	/*
	 * AES-128-GCM first: with AES-NI it is the cheapest AEAD per byte, and
	 * a bulk tunnel spends most of its CPU there; the others stay allowed.
	 */
	if (SSL_CTX_set_ciphersuites(ctx, TLS_CIPHERSUITES) != 1)
		return -EINVAL;
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_default_read_buffer_len(ctx, TLS_READ_BUFFER_BYTES);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_msg_callback(ctx, msg_callback);
	if (server) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_callback);
		if (SSL_CTX_set_num_tickets(ctx, 0) != 1)
			return -EINVAL;
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_callback);
		/* Sessions go to session_received(), not to OpenSSL's cache. */
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
						    SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(ctx, session_received);
	}
	return 0;
}

struct tls_ctx *tls_ctx_new(bool server, const char *cert_file, const char *key_file,
			    const char *ca_file, const char *crl_file, char *err, size_t err_len)
{
	struct tls_ctx *ctx = calloc(1, sizeof(*ctx));

	if (!ctx) {
		snprintf(err, err_len, "out of memory");
		return NULL;
	}
	ctx->server = server;
	ctx->ca_file = ca_file ? strdup(ca_file) : NULL;
	ctx->crl_file = crl_file ? strdup(crl_file) : NULL;
	if ((ca_file && !ctx->ca_file) || (crl_file && !ctx->crl_file)) {
		snprintf(err, err_len, "out of memory");
		goto err_free;
	}
	ERR_clear_error();
	if (conn_ex_index < 0)
		conn_ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	ctx->ssl_ctx = SSL_CTX_new(TLS_method());
	ctx->bio_method = bio_sock_method_new();
	if (!ctx->ssl_ctx || !ctx->bio_method || conn_ex_index < 0 ||
	    ctx_policy(ctx->ssl_ctx, server) < 0) {
		snprintf(err, err_len, "cannot set up TLS 1.3 in OpenSSL");
		goto err_free;
	}
	if (load_identity(ctx->ssl_ctx, cert_file, key_file, err, err_len) < 0 ||
	    load_ca(ctx, err, err_len) < 0)
		goto err_free;
	ERR_clear_error();
	return ctx;

err_free:
	ERR_clear_error();
	tls_ctx_free(ctx);
	errno = EINVAL;
	return NULL;
}

void tls_ctx_free(struct tls_ctx *ctx)
{
	if (!ctx)
		return;
	SSL_CTX_free(ctx->ssl_ctx);
	BIO_meth_free(ctx->bio_method);
	free(ctx->ca_file);
	free(ctx->crl_file);
	free(ctx->ticket_file);
	ticket_keys_free(ctx->tickets);
	SSL_SESSION_free(ctx->last_session);
	free(ctx);
}

bool tls_ctx_has_crl(const struct tls_ctx *ctx)
{
	return ctx->crl_file != NULL;
}

int tls_ctx_reload(struct tls_ctx *ctx, char *err, size_t err_len)
{
	X509_STORE *store;

	ERR_clear_error();
	store = store_new(ctx->ca_file, ctx->crl_file, err, err_len);
	ERR_clear_error();
	if (!store)
		return -EINVAL;
	/* Handshakes verify between our calls, never across one: the swap is safe. */
	SSL_CTX_set_cert_store(ctx->ssl_ctx, store);
	return 0;
}

/* ---- session tickets: keys from a file both servers read ---- */

/*
 * A key is 80 bytes, written as 160 hex digits on one line: a 16-byte name
 * (sent in clear inside the ticket, picks the key), a 32-byte HMAC-SHA256
 * key and a 32-byte AES-256 key. OpenSSL seals and opens the tickets
 * (SSL_CTX_set_tlsext_ticket_key_evp_cb): we only hand it the keys.
 */
enum {
	TICKET_NAME_LEN = 16,
	TICKET_HMAC_LEN = 32,
	TICKET_AES_LEN = 32,
	TICKET_KEY_LEN = TICKET_NAME_LEN + TICKET_HMAC_LEN + TICKET_AES_LEN,
	TICKET_FILE_MAX = 4096,
};

struct ticket_key {
	unsigned char name[TICKET_NAME_LEN];
	unsigned char hmac[TICKET_HMAC_LEN];
	unsigned char aes[TICKET_AES_LEN];
};

struct tls_ticket_keys {
	struct ticket_key key[2]; /* [0] current: seals and opens; [1] previous: opens only */
	size_t count;
};

static int hex_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* One line of exactly 160 hex digits (spaces around allowed) into key. */
static int ticket_key_parse(const char *line, size_t len, struct ticket_key *key)
{
	unsigned char raw[TICKET_KEY_LEN];
	size_t i;
	int hi, lo;

	while (len && (line[len - 1] == ' ' || line[len - 1] == '\t' || line[len - 1] == '\r'))
		len--;
	while (len && (*line == ' ' || *line == '\t')) {
		line++;
		len--;
	}
	if (len != 2 * TICKET_KEY_LEN)
		return -EINVAL;
	for (i = 0; i < TICKET_KEY_LEN; i++) {
		hi = hex_nibble(line[2 * i]);
		lo = hex_nibble(line[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			OPENSSL_cleanse(raw, sizeof(raw));
			return -EINVAL;
		}
		raw[i] = (unsigned char)(hi << 4 | lo);
	}
	memcpy(key->name, raw, TICKET_NAME_LEN);
	memcpy(key->hmac, raw + TICKET_NAME_LEN, TICKET_HMAC_LEN);
	memcpy(key->aes, raw + TICKET_NAME_LEN + TICKET_HMAC_LEN, TICKET_AES_LEN);
	OPENSSL_cleanse(raw, sizeof(raw));
	return 0;
}

/* Key lines of text, '#' comments and blank lines skipped; never quotes a key in err. */
static int ticket_keys_parse(const char *path, const char *text, struct tls_ticket_keys *out,
			     char *err, size_t err_len)
{
	const char *line = text, *end;
	unsigned lineno = 0;
	size_t len;

	out->count = 0;
	for (; *line; line = *end ? end + 1 : end) {
		end = strchr(line, '\n');
		if (!end)
			end = line + strlen(line);
		len = (size_t)(end - line);
		lineno++;
		if (strspn(line, " \t\r") >= len || line[strspn(line, " \t")] == '#')
			continue;
		if (out->count == 2) {
			snprintf(err, err_len, "--ticket-keys %s:%u: more than two keys (current, previous)",
				 path, lineno);
			return -EINVAL;
		}
		if (ticket_key_parse(line, len, &out->key[out->count]) < 0) {
			snprintf(err, err_len, "--ticket-keys %s:%u: not a key of %d hex digits", path,
				 lineno, 2 * TICKET_KEY_LEN);
			return -EINVAL;
		}
		out->count++;
	}
	if (out->count == 0) {
		snprintf(err, err_len, "--ticket-keys %s: no key in it", path);
		return -EINVAL;
	}
	if (out->count == 2 && !CRYPTO_memcmp(out->key[0].name, out->key[1].name, TICKET_NAME_LEN)) {
		snprintf(err, err_len, "--ticket-keys %s: both keys have the same name", path);
		return -EINVAL;
	}
	return 0;
}

/* The file's text, refused unless only its owner may read or write it. */
static int ticket_file_read(const char *path, char *buf, size_t buf_len, char *err, size_t err_len)
{
	struct stat st;
	ssize_t n;
	int fd, ret = -EINVAL;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, err_len, "--ticket-keys %s: %s", path, strerror(errno));
		return ret;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, err_len, "--ticket-keys %s: not a regular file", path);
	} else if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(err, err_len, "--ticket-keys %s: mode %03o lets others read or change the keys; "
			 "chmod 600 it", path, (unsigned)(st.st_mode & 0777));
		ret = -EPERM;
	} else {
		n = read(fd, buf, buf_len - 1);
		if (n < 0 || (size_t)n == buf_len - 1) {
			snprintf(err, err_len, "--ticket-keys %s: %s", path,
				 n < 0 ? strerror(errno) : "too large for a key file");
		} else {
			buf[n] = '\0';
			ret = 0;
		}
	}
	close(fd);
	return ret;
}

static struct tls_ticket_keys *ticket_keys_of(SSL *ssl)
{
	struct tls_conn *conn = SSL_get_ex_data(ssl, conn_ex_index);

	return conn ? conn->ctx->tickets : NULL;
}

static int ticket_mac_init(EVP_MAC_CTX *hctx, const struct ticket_key *key)
{
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_construct_end(),
	};

	return EVP_MAC_init(hctx, key->hmac, TICKET_HMAC_LEN, params) == 1 ? 0 : -1;
}

/*
 * OpenSSL's ticket-key callback. Sealing: the current key, a fresh IV.
 * Opening: the key the ticket names; 2 asks OpenSSL for a new ticket under
 * the current key when the previous one opened it; 0 (unknown name) makes
 * it a full handshake.
 */
static int ticket_key_cb(SSL *ssl, unsigned char key_name[16], unsigned char iv[EVP_MAX_IV_LENGTH],
			 EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
	struct tls_ticket_keys *keys = ticket_keys_of(ssl);
	const struct ticket_key *key;
	size_t i;

	if (!keys || keys->count == 0)
		return enc ? -1 : 0;
	if (enc) {
		key = &keys->key[0];
		if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(EVP_aes_256_cbc())) != 1)
			return -1;
		memcpy(key_name, key->name, TICKET_NAME_LEN);
		if (EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, key->aes, iv) != 1 ||
		    ticket_mac_init(hctx, key) < 0)
			return -1;
		return 1;
	}
	for (i = 0; i < keys->count; i++) {
		key = &keys->key[i];
		if (CRYPTO_memcmp(key_name, key->name, TICKET_NAME_LEN) != 0)
			continue;
		if (EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, key->aes, iv) != 1 ||
		    ticket_mac_init(hctx, key) < 0)
			return -1;
		return i == 0 ? 1 : 2;
	}
	return 0;
}

/* ---- connections ---- */

static bool is_ip_literal(const char *name)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

static int conn_expect_server(SSL *ssl, const char *server_name)
{
	if (is_ip_literal(server_name))
		return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), server_name) == 1 ? 0 : -EINVAL;
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (SSL_set1_host(ssl, server_name) != 1 || SSL_set_tlsext_host_name(ssl, server_name) != 1)
		return -EINVAL;
	return 0;
}

struct tls_conn *tls_conn_new(struct tls_ctx *ctx, int fd, const char *server_name,
			      struct tls_record_counters *counters)
{
	struct tls_conn *conn = calloc(1, sizeof(*conn));
	BIO *bio;

	if (!conn)
		return NULL;
	conn->fd = fd;
	conn->ctx = ctx;
	ERR_clear_error();
	conn->ssl = SSL_new(ctx->ssl_ctx);
	if (!conn->ssl)
		goto err_free;
	bio = BIO_new(ctx->bio_method);
	if (!bio)
		goto err_free;
	BIO_set_data(bio, conn);
	BIO_set_init(bio, 1);
	if (SSL_set_ex_data(conn->ssl, conn_ex_index, conn) != 1) {
		BIO_free(bio); /* the verify callback would find no connection */
		goto err_free;
	}
	SSL_set_bio(conn->ssl, bio, bio);
	SSL_set_msg_callback_arg(conn->ssl, counters);
	if (ctx->server)
		SSL_set_accept_state(conn->ssl);
	else if (!server_name || conn_expect_server(conn->ssl, server_name) < 0)
		goto err_free;
	else
		SSL_set_connect_state(conn->ssl);
	if (!ctx->server) {
		snprintf(conn->server_name, sizeof(conn->server_name), "%s", server_name);
		conn_offer_session(conn);
	}
	return conn;

err_free:
	ERR_clear_error();
	tls_conn_free(conn);
	errno = ENOMEM;
	return NULL;
}

void tls_conn_free(struct tls_conn *conn)
{
	if (!conn)
		return;
	SSL_free(conn->ssl);
	free(conn);
}

int tls_handshake(struct tls_conn *conn)
{
	int ret;

	if (conn->fatal)
		return -1;
	ERR_clear_error();
	ret = SSL_do_handshake(conn->ssl);
	if (ret == 1)
		return 0;
	ret = conn_result(conn, ret);
	if (ret == 0) {
		/* close_notify in the middle of a handshake is no clean end */
		conn->fatal = true;
		snprintf(conn->error, sizeof(conn->error), "peer closed during the handshake");
		return -1;
	}
	return ret;
}

ssize_t tls_read(struct tls_conn *conn, void *buf, size_t len)
{
	int ret;

	if (conn->fatal)
		return -1;
	if (len > INT32_MAX)
		len = INT32_MAX;
	ERR_clear_error();
	ret = SSL_read(conn->ssl, buf, (int)len);
	if (ret > 0)
		return ret;
	return conn_result(conn, ret);
}

ssize_t tls_write(struct tls_conn *conn, const void *buf, size_t len)
{
	int ret;

	if (conn->fatal)
		return -1;
	if (len > INT32_MAX)
		len = INT32_MAX;
	ERR_clear_error();
	ret = SSL_write(conn->ssl, buf, (int)len);
	if (ret > 0)
		return ret;
	ret = conn_result(conn, ret);
	if (ret == 0) {
		conn->fatal = true;
		snprintf(conn->error, sizeof(conn->error), "peer closed the connection");
		return -1;
	}
	return ret;
}

bool tls_pending(struct tls_conn *conn)
{
	return !conn->fatal && SSL_has_pending(conn->ssl);
}

bool tls_drained(struct tls_conn *conn)
{
	return conn->short_read && !tls_pending(conn);
}

void tls_close(struct tls_conn *conn)
{
	if (!conn || conn->fatal || conn->shut || !SSL_is_init_finished(conn->ssl))
		return;
	conn->shut = true;
	ERR_clear_error();
	SSL_shutdown(conn->ssl);
	ERR_clear_error();
}

int tls_peer_cn(struct tls_conn *conn, char *out, size_t out_len)
{
	X509 *cert = SSL_get1_peer_certificate(conn->ssl);
	X509_NAME *subject;
	int len, ret = -EINVAL;

	if (!cert)
		return -ENOENT;
	subject = X509_get_subject_name(cert);
	if (cn_count(subject) > 1) {
		X509_free(cert); /* the verify callback refused it already; never guess which */
		return -ENOTUNIQ;
	}
	/* Without a buffer it reports the full length: a long name is refused, not cut. */
	len = X509_NAME_get_text_by_NID(subject, NID_commonName, NULL, 0);
	if (len < 0)
		ret = -ENOENT;
	else if (len > 0 && (size_t)len < out_len && out_len <= INT32_MAX &&
		 X509_NAME_get_text_by_NID(subject, NID_commonName, out, (int)out_len) == len &&
		 strlen(out) == (size_t)len)
		ret = 0; /* and no embedded NUL */
	X509_free(cert);
	return ret;
}

/* The context of a check like the handshake's: purpose, and the client's name check. */
static int reverify_init(SSL *ssl, X509_STORE_CTX *vctx, X509_STORE *store, X509 *leaf,
			 STACK_OF(X509) *chain)
{
	bool server = SSL_is_server(ssl);

	if (X509_STORE_CTX_init(vctx, store, leaf, chain) != 1)
		return -ENOMEM;
	/* Copies the connection's parameters (host name) over the store's (CRL flags);
	 * without them the check would pass a certificate the handshake refuses. */
	if (X509_VERIFY_PARAM_set1(X509_STORE_CTX_get0_param(vctx), SSL_get0_param(ssl)) != 1 ||
	    X509_VERIFY_PARAM_set_flags(X509_STORE_CTX_get0_param(vctx),
					X509_VERIFY_PARAM_get_flags(X509_STORE_get0_param(store))) != 1)
		return -ENOMEM;
	if (X509_STORE_CTX_set_default(vctx, server ? "ssl_client" : "ssl_server") != 1)
		return -ENOMEM;
	return 0;
}

/* 0 if leaf (with chain) passes the store of ssl's context now, -EPERM, -ENOMEM; why says. */
static int verify_now(SSL *ssl, X509 *leaf, STACK_OF(X509) *chain, char *why, size_t why_len)
{
	X509_STORE *store = SSL_CTX_get_cert_store(SSL_get_SSL_CTX(ssl));
	X509_STORE_CTX *vctx = X509_STORE_CTX_new();
	int ret = -ENOMEM;

	if (!vctx || reverify_init(ssl, vctx, store, leaf, chain) < 0) {
		snprintf(why, why_len, "out of memory for a certificate check");
		goto out;
	}
	ret = 0;
	if (X509_verify_cert(vctx) != 1) {
		snprintf(why, why_len, "certificate verify failed: %s",
			 X509_verify_cert_error_string(X509_STORE_CTX_get_error(vctx)));
		ret = -EPERM;
	}
out:
	X509_STORE_CTX_free(vctx);
	return ret;
}

int tls_conn_reverify(struct tls_conn *conn)
{
	X509 *leaf = SSL_get0_peer_certificate(conn->ssl);
	int ret;

	if (!leaf)
		return 0; /* before the handshake: it will be checked then */
	ERR_clear_error();
	/* After a resumption the chain is NULL: the leaf must chain to --ca by itself. */
	ret = verify_now(conn->ssl, leaf, SSL_get_peer_cert_chain(conn->ssl), conn->error,
			 sizeof(conn->error));
	ERR_clear_error();
	return ret;
}

bool tls_conn_resumed(const struct tls_conn *conn)
{
	return SSL_session_reused(conn->ssl) == 1;
}

/* ---- resumption: the server's check of an opened ticket, the client's memory ---- */

/*
 * A ticket opened: its client certificate must pass the CA and CRL in
 * force now, as a full handshake's would (a revoked peer must not resume
 * its way around the CRL). If not, the ticket is ignored: a full
 * handshake follows, which refuses the peer with the usual reason.
 */
static SSL_TICKET_RETURN ticket_decrypted(SSL *ssl, SSL_SESSION *sess, const unsigned char *name,
					  size_t name_len, SSL_TICKET_STATUS status, void *arg)
{
	X509 *leaf = sess ? SSL_SESSION_get0_peer(sess) : NULL;
	char why[128];

	(void)name;
	(void)name_len;
	(void)arg;
	switch (status) {
	case SSL_TICKET_SUCCESS:
	case SSL_TICKET_SUCCESS_RENEW:
		break;
	case SSL_TICKET_FATAL_ERR_MALLOC:
	case SSL_TICKET_FATAL_ERR_OTHER:
		return SSL_TICKET_RETURN_ABORT;
	default:
		return SSL_TICKET_RETURN_IGNORE_RENEW; /* none, unknown key, forged: full handshake */
	}
	if (!leaf || verify_now(ssl, leaf, NULL, why, sizeof(why)) < 0)
		return SSL_TICKET_RETURN_IGNORE_RENEW;
	return status == SSL_TICKET_SUCCESS_RENEW ? SSL_TICKET_RETURN_USE_RENEW : SSL_TICKET_RETURN_USE;
}

/*
 * Client: OpenSSL hands over each new session (ticket); a copy of the last
 * one is kept. A copy, because the connection goes on using the original,
 * and OpenSSL marks a connection's session not resumable when it ends in
 * an error, such as the server dying without close_notify: the very case
 * the kept session is for.
 */
static int session_received(SSL *ssl, SSL_SESSION *sess)
{
	struct tls_conn *conn = SSL_get_ex_data(ssl, conn_ex_index);
	SSL_SESSION *copy;

	if (!conn || !SSL_SESSION_is_resumable(sess))
		return 0;
	copy = SSL_SESSION_dup(sess);
	if (!copy)
		return 0;
	SSL_SESSION_free(conn->ctx->last_session);
	conn->ctx->last_session = copy;
	snprintf(conn->ctx->last_session_name, sizeof(conn->ctx->last_session_name), "%s",
		 conn->server_name);
	return 0; /* OpenSSL frees its reference */
}

/* Client: offers a copy of the kept session to a server expected to carry the same name. */
static void conn_offer_session(struct tls_conn *conn)
{
	struct tls_ctx *ctx = conn->ctx;
	SSL_SESSION *copy;

	if (!ctx->last_session || strcmp(ctx->last_session_name, conn->server_name) != 0)
		return;
	copy = SSL_SESSION_dup(ctx->last_session);
	if (!copy)
		return; /* a full handshake then */
	SSL_set_session(conn->ssl, copy);
	SSL_SESSION_free(copy); /* the connection holds its own reference */
}

static void ticket_keys_free(struct tls_ticket_keys *keys)
{
	if (keys) {
		OPENSSL_cleanse(keys, sizeof(*keys));
		free(keys);
	}
}

int tls_ctx_set_ticket_keys(struct tls_ctx *ctx, const char *path, char *err, size_t err_len)
{
	struct tls_ticket_keys *keys;
	char *text, *copy = NULL;
	int ret = -ENOMEM;

	if (!ctx->server || !path) {
		snprintf(err, err_len, "--ticket-keys: a server's option");
		return -EINVAL;
	}
	keys = calloc(1, sizeof(*keys));
	text = malloc(TICKET_FILE_MAX);
	if (path != ctx->ticket_file)
		copy = strdup(path);
	if (!keys || !text || (path != ctx->ticket_file && !copy)) {
		snprintf(err, err_len, "out of memory");
		goto out;
	}
	ret = ticket_file_read(path, text, TICKET_FILE_MAX, err, err_len);
	if (ret == 0)
		ret = ticket_keys_parse(path, text, keys, err, err_len);
	OPENSSL_cleanse(text, TICKET_FILE_MAX);
	if (ret < 0)
		goto out;
	if (!ctx->tickets &&
	    (SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx->ssl_ctx, ticket_key_cb) != 1 ||
	     SSL_CTX_set_session_ticket_cb(ctx->ssl_ctx, NULL, ticket_decrypted, NULL) != 1 ||
	     SSL_CTX_set_num_tickets(ctx->ssl_ctx, 1) != 1 ||
	     /* Required to resume with client certificates; the same on both servers. */
	     SSL_CTX_set_session_id_context(ctx->ssl_ctx, (const unsigned char *)"tunlab", 6) != 1)) {
		snprintf(err, err_len, "cannot set up session tickets in OpenSSL");
		ret = -EINVAL;
		goto out;
	}
	/* Handshakes open and seal tickets between our calls, never across one. */
	ticket_keys_free(ctx->tickets);
	ctx->tickets = keys;
	keys = NULL;
	if (copy) {
		free(ctx->ticket_file);
		ctx->ticket_file = copy;
		copy = NULL;
	}
out:
	ERR_clear_error();
	ticket_keys_free(keys);
	free(text);
	free(copy);
	return ret;
}

int tls_ctx_reload_ticket_keys(struct tls_ctx *ctx, char *err, size_t err_len)
{
	if (!ctx->ticket_file)
		return 0;
	return tls_ctx_set_ticket_keys(ctx, ctx->ticket_file, err, err_len);
}

int tls_export(struct tls_conn *conn, const char *label, const uint8_t *context,
	       size_t context_len, uint8_t *out, size_t len)
{
	if (SSL_export_keying_material(conn->ssl, out, len, label, strlen(label), context, context_len,
				       1) != 1)
		return -EIO;
	return 0;
}

const char *tls_conn_error(const struct tls_conn *conn)
{
	return conn->error[0] ? conn->error : "no error";
}
