/* signer: the CA private key's own process (privilege separation, as OpenBSD daemons do).
 * The server spawns it at start-up (fork + exec of its own binary, "signer" subcommand)
 * over a socketpair; only it opens pki/ca.key and only it redeems enrollment tokens in
 * auth.db (check, sign, consume, record, audit: one transaction). Parent side: loop thread
 * only; the signer's death is noticed (EOF, exit) and it is restarted. signer_stop ends it
 * and frees everything once the loop has run the handles' close callbacks. Child side:
 * signer_main, blocking I/O on fd 3, one request at a time. */
#ifndef VW_SIGNER_H
#define VW_SIGNER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "server_conf.h"

/* A frame is a 4-byte big-endian length and that many bytes of JSON. An enrollment body is
 * at most 64 KiB (api/enroll.c); a reply two PEM certificates. Anything longer is a broken
 * or hostile peer, and ends the exchange. */
#define SIGNER_FRAME_MAX (96u << 10)
/* Enrollments waiting for the signer; more are answered 503 (it happens once per venue). */
#define SIGNER_QUEUE_MAX 32
/* The signer's own fd for the socket (stdio, then this). */
#define SIGNER_FD 3

struct signer;

/* What the signer answered. rc: 0 signed; -ENOENT unknown token, -EALREADY used,
 * -EKEYEXPIRED expired, -EINVAL a CSR it refuses (err says why), -EIO access records
 * unavailable, -EPIPE the signer is down (or died with the request). Strings are valid
 * during the callback only. */
struct signer_reply {
	int rc;
	const char *err;
	const char *token_id; /* the token's public id, "" when it did not parse */
	const char *site, *agent, *org, *city, *serial, *cert, *ca;
	int64_t not_after_ms;
};
typedef void (*signer_cb)(void *ud, const struct signer_reply *r);

/* Spawns the signer and waits (before the loop runs) until it says it is ready: it has
 * opened auth.db and made the CRL current. 0 or a negative errno with err set. */
int signer_start(uv_loop_t *loop, const char *conf_path, struct signer **out, char *err,
                 size_t errlen);
/* Hands an enrollment to the signer; cb runs exactly once, later, on the loop thread (also
 * when the signer dies or stops). -EAGAIN (signer down or restarting) or -ENOBUFS (queue
 * full): cb is not called; the caller answers 503. */
int signer_enroll(struct signer *s, const char *token, const char *csr, size_t csr_len,
                  const char *peer, signer_cb cb, void *ud);
/* The signer's pid, 0 while none runs. */
int signer_pid(const struct signer *s);
/* Shutdown: closes the socket (the signer exits on EOF), fails what is pending, and frees s
 * once its handles are closed. Accepts NULL. */
void signer_stop(struct signer *s);

/* The signer's sandbox, applied by signer_main once auth.db is open and the CRL current (and
 * by tests/unit/test_signer_sandbox.c, in a child): no_new_privs; Landlock (when the kernel
 * has it) limiting the filesystem to dirs and what is below them; then a default-deny seccomp
 * filter allowing only the file, memory and clock calls the signer makes (EPERM for the rest,
 * ENOSYS for clone3; exec, ptrace, process_vm_* and io_uring kill the process). Irreversible.
 * *landlock_abi: the Landlock ABI applied, 0 when the kernel has none. 0 or a negative errno. */
int signer_sandbox_apply(const char *const *dirs, size_t ndirs, int *landlock_abi);

/* A number from the signer's reply, for the parent's parser (and tests): finite, integral
 * and within [min, max] (both exact as doubles) into *out; absent: dflt. 0 or -EPROTO
 * (converting any other double to an integer type is undefined behaviour). */
struct cJSON;
int signer_json_int(const struct cJSON *o, const char *k, int64_t min, int64_t max, int64_t dflt,
                    int64_t *out);

/* The "signer" subcommand, run by signer_start in the child: serves fd SIGNER_FD until EOF.
 * Returns the exit status. */
int signer_main(struct server_conf *cfg);

#endif
