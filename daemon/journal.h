/*
 * The journal: an append-only log of numbered frames, kept in segment files
 * beside the store's database: BASE-jnl-SEQ, SEQ being the number of the
 * segment's first frame in 16 hex digits. A frame is
 *
 *   u32 payload length | u32 CRC-32C of the rest | u64 number | payload
 *
 * (little-endian). Frames are numbered from 1 with no gap, across segments.
 * A frame is whole or absent: one that a crash cut short, or whose check
 * fails, ends what can be read.
 *
 * What the frames say is the caller's business (store_codec.h). Only
 * store_sqlite.c uses this. An open journal (struct journal) belongs to
 * one thread, which appends, syncs and rotates; reading and removing
 * segments are plain file operations, safe on any thread.
 */
#ifndef RV_JOURNAL_H
#define RV_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JOURNAL_HEADER 16
/* No frame is longer than this (a payload beyond it is refused). */
#define JOURNAL_MAX_FRAME (64u * 1024 * 1024)

/* A segment file: its path (owned) and the number of its first frame. */
struct journal_segment {
	char *path;
	uint64_t first;
};

/*
 * The segments of base's journal, in order: *out (free with
 * journal_segments_free) and *n. 0, or -1 after logging why.
 */
int journal_list(const char *base, struct journal_segment **out, size_t *n);
void journal_segments_free(struct journal_segment *segs, size_t n);

/* A segment mapped read-only (free with journal_file_free); data NULL when empty. */
struct journal_file {
	uint8_t *data;
	size_t len;
};
int journal_load(const char *path, struct journal_file *f);
void journal_file_free(struct journal_file *f);

/* Called for each whole frame; a non-zero return stops the scan with it. */
typedef int (*journal_frame_fn)(uint64_t seq, const uint8_t *payload, size_t len, void *arg);

/*
 * Walk the whole frames of f from its start. *next is the number the first
 * frame must carry (0: any); it is left at the number after the last whole
 * frame. Returns the length of the whole frames, the rest being torn or
 * damaged (f->len when none is), or -1 when fn stopped the scan.
 */
long long journal_scan(const struct journal_file *f, uint64_t *next, journal_frame_fn fn,
		       void *arg);

/* An open journal, appending to its newest segment. */
struct journal;

/*
 * Start a new segment (readable by the daemon only) whose first frame is
 * numbered next; NULL after logging why.
 */
struct journal *journal_open(const char *base, uint64_t next);
void journal_close(struct journal *j);

/*
 * Append one frame (len <= JOURNAL_MAX_FRAME) with a single write. On
 * failure nothing of it stays in the file (what was written is cut off
 * again) and -1 is returned after logging why, with errno set.
 */
int journal_append(struct journal *j, const void *payload, size_t len);
/*
 * Take back the frame just appended (its flush failed, so it must not come
 * back at the next start); 0, or -1 when it could not be cut off (the next
 * append tries again first).
 */
int journal_unappend(struct journal *j);
/* fdatasync() the segment being appended to; 0 or -1 after logging. */
int journal_sync(struct journal *j);
/*
 * Flush the current segment and start the next one: *closed gets the
 * finished segment's path (owned by the caller). 0 or -1 (the journal goes
 * on appending to the old segment).
 */
int journal_rotate(struct journal *j, char **closed);

/* The segment being appended to, its size, and the number its next frame gets. */
const char *journal_path(const struct journal *j);
uint64_t journal_size(const struct journal *j);
uint64_t journal_next(const struct journal *j);

#endif
