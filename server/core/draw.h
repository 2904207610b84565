/* draw: the verifiable double-random draw of issue 12 (docs/DRAW.md is the specification an
 * independent implementation follows). JSON in, JSON out: the plan's normalisation, the manifest
 * built at commit, the document computed at execute once the public randomness exists, a
 * replacement of an inspector, and the offline verification of a document.
 * Pure: no I/O and no globals, any thread (OpenSSL EVP for SHA-256 and HKDF, cJSON for JSON; the
 * only non-pure call is RAND_bytes for the private part's salt in draw_commit_build). Every
 * char ** output is malloc'd and the caller frees it; on error nothing is returned. Errors are 0
 * or a negative errno, with `err` naming the field as a JSON path. */
#ifndef VW_DRAW_H
#define VW_DRAW_H

#include <stddef.h>
#include <stdint.h>

#define DRAW_FORMAT "venuewatch-draw/1"
#define DRAW_PRIVATE_FORMAT "venuewatch-draw-private/1"
#define DRAW_SALT_LEN 32
/* Upper bounds the core enforces (docs/DRAW.md "Limits"). */
#define DRAW_MAX_PER 16     /* inspectors per inspection */
#define DRAW_MAX_GRADES 16  /* as inspect_labels */
#define DRAW_MAX_SOURCES 16 /* declared randomness sources */
#define DRAW_MAX_REPLACE 64 /* declared replacement sources */
#define DRAW_MAX_KEY 128    /* bytes of an org, inspector, site or item id */
#define DRAW_MAX_SECRET 64  /* bytes of the bureau's secret */
#define DRAW_MIN_SECRET 16

/* The plan is validated and normalised (defaults filled, ratios in basis points). */
int draw_plan_check(const char *plan_json, char **normalised, char *err, size_t errlen);

/* Commit: builds the manifest (public) and the private part from the plan, the registers'
 * snapshot (JSON arrays as registers_snapshot gives, full inspector rows incl. ties/away), the
 * previous pairs (JSON [{"org":..,"inspectors":["I001","I002"]}], may be "[]"), the randomness
 * declaration (JSON {"sources":[{"name","expected","form"}],"replacements":[...]}) and the
 * commitment (64 hex = SHA-256 of the bureau's secret). created_ms goes into the manifest.
 * The private part's 32-byte salt comes from RAND_bytes. -EINVAL names the input's field;
 * a target with fewer than inspectors_per untied roster members is refused naming its org. */
int draw_commit_build(const char *draw_id, const char *plan_json, const char *targets_json,
                      const char *inspectors_json, const char *items_json,
                      const char *prev_pairs_json, const char *randomness_json,
                      const char *commitment_hex, int64_t created_ms, char **manifest_json,
                      char **manifest_sha256_hex, char **private_json, char *err, size_t errlen);
/* The same with the caller's salt (test vectors, reproducible commits). */
int draw_commit_build_salted(const char *draw_id, const char *plan_json, const char *targets_json,
                             const char *inspectors_json, const char *items_json,
                             const char *prev_pairs_json, const char *randomness_json,
                             const char *commitment_hex, int64_t created_ms,
                             const unsigned char salt[DRAW_SALT_LEN], char **manifest_json,
                             char **manifest_sha256_hex, char **private_json, char *err,
                             size_t errlen);

/* Execute: values_json is a JSON array of strings, one per declared source, as announced (the
 * core canonicalises them); secret_hex the revealed secret (-EPERM "secret: does not match the
 * commitment" unless SHA-256(secret) = the commitment); sessions_json the exam sessions
 * [{"id":17,"org":..,"site":..,"start":"RFC3339","end":"RFC3339"}] known at execute (others'
 * orgs and sessions outside the window are ignored). Returns the published document. */
int draw_execute(const char *manifest_json, const char *private_json, const char *values_json,
                 const char *secret_hex, const char *sessions_json, int64_t executed_ms,
                 char **document_json, char *err, size_t errlen);

/* A replacement: inspector `out` of inspection `seq` leaves (reason); the next declared
 * replacement source's announced value picks the new one with the same rules. -ENOENT unknown
 * seq or `out` not a current member; -ENOSPC every declared replacement source is used or no
 * roster member is eligible; -EBADMSG the document does not verify against the private part. */
int draw_replace(const char *document_json, const char *private_json, int seq, const char *out,
                 const char *reason, const char *value, int64_t at_ms, char **document_json_out,
                 char *err, size_t errlen);

/* Recomputes everything from the document alone (and the private part if given: then recusal
 * and availability skips are checked too). 0 = matches; -EBADMSG with err naming the first
 * input or output that does not match (published vs recomputed); -EINVAL unreadable JSON.
 * expected_manifest_sha256 (NULL: not checked) = the hash published at commit. */
int draw_verify(const char *document_json, const char *private_json,
                const char *expected_manifest_sha256, char *err, size_t errlen);

/* Building blocks, exposed for the CLI and the tests. */
/* Canonical JSON (docs/DRAW.md "Canonical JSON") of any JSON text. */
int draw_canonical(const char *json, char **out, char *err, size_t errlen);
/* An announced value in canonical form ("12.34.56/"); form "sorted" or "ordered". */
int draw_value_canonical(const char *value, const char *form, char **out, char *err, size_t errlen);
/* SHA-256 of the secret's bytes as 64 lowercase hex (the commitment). */
int draw_commitment(const char *secret_hex, char out[65], char *err, size_t errlen);

#endif
