/* The journal: segment files of numbered, checked frames (journal.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "journal.h"
#include "log.h"

struct journal {
	char *base;
	char *path; /* the segment being appended to */
	int fd;
	uint64_t size; /* its length: where the next frame starts */
	uint64_t next; /* the number the next frame gets */
	uint64_t last; /* the length of the last frame appended (0: none to take back) */
	bool cut;      /* a failed append could not be cut off: fix that first */
};

/*
 * CRC-32C (Castagnoli), reflected, slicing by 8 (eight tables, eight bytes
 * a step): start-up reads every frame back, so this is on its path.
 */
static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void
crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
		crc_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^
					  crc_table[0][crc_table[t - 1][i] & 0xff];
}

static uint32_t
crc32c(uint32_t crc, const uint8_t *p, size_t n)
{
	crc = ~crc;
	while (n >= 8) {
		uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
				     (uint32_t)p[3] << 24);
		uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 |
			      (uint32_t)p[7] << 24;
		crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
		      crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
		      crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
		      crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
		p += 8;
		n -= 8;
	}
	while (n-- > 0)
		crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

static void
put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void
put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t
get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* The checksum of a frame: over its number, then its payload. */
static uint32_t
frame_crc(const uint8_t *seq8, const uint8_t *payload, size_t len)
{
	pthread_once(&crc_once, crc_init);
	return crc32c(crc32c(0, seq8, 8), payload, len);
}

static int
segment_cmp(const void *a, const void *b)
{
	const struct journal_segment *x = a, *y = b;

	return x->first < y->first ? -1 : x->first > y->first;
}

int
journal_list(const char *base, struct journal_segment **out, size_t *n)
{
	char *copy = strdup(base), *copy2 = strdup(base);
	const char *dir, *name;
	char prefix[NAME_MAX + 8];
	struct journal_segment *segs = NULL;
	size_t len = 0, cap = 0;
	struct dirent *de;
	DIR *d = NULL;
	int rc = -1;

	*out = NULL;
	*n = 0;
	if (copy == NULL || copy2 == NULL)
		goto done;
	dir = dirname(copy);
	name = basename(copy2);
	snprintf(prefix, sizeof prefix, "%s-jnl-", name);
	if ((d = opendir(dir)) == NULL) {
		log_error("journal %s: cannot list %s: %s", base, dir, strerror(errno));
		goto done;
	}
	while ((de = readdir(d)) != NULL) {
		const char *hex;
		char *end;
		uint64_t first;

		if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
			continue;
		hex = de->d_name + strlen(prefix);
		errno = 0;
		first = strtoull(hex, &end, 16);
		if (strlen(hex) != 16 || *end != '\0' || errno != 0 || first == 0)
			continue; /* not ours (a temporary file, say) */
		if (len == cap) {
			struct journal_segment *g =
				realloc(segs, (cap = cap ? 2 * cap : 8) * sizeof *segs);
			if (g == NULL)
				goto done;
			segs = g;
		}
		if (asprintf(&segs[len].path, "%s/%s", dir, de->d_name) < 0)
			goto done;
		segs[len++].first = first;
	}
	if (len > 1)
		qsort(segs, len, sizeof *segs, segment_cmp);
	*out = segs;
	*n = len;
	segs = NULL;
	len = 0;
	rc = 0;
done:
	if (rc != 0 && errno == ENOMEM)
		log_error("journal %s: out of memory", base);
	if (d != NULL)
		closedir(d);
	journal_segments_free(segs, len);
	free(copy);
	free(copy2);
	return rc;
}

void
journal_segments_free(struct journal_segment *segs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(segs[i].path);
	free(segs);
}

int
journal_load(const char *path, struct journal_file *f)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat sb;
	void *p;

	f->data = NULL;
	f->len = 0;
	if (fd < 0 || fstat(fd, &sb) != 0) {
		log_error("journal %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (sb.st_size == 0) {
		close(fd);
		return 0;
	}
	/* Mapped, not copied: a segment read back costs page cache, not the daemon's memory. */
	p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		log_error("journal %s: cannot map it: %s", path, strerror(errno));
		return -1;
	}
	madvise(p, (size_t)sb.st_size, MADV_SEQUENTIAL);
	f->data = p;
	f->len = (size_t)sb.st_size;
	return 0;
}

void
journal_file_free(struct journal_file *f)
{
	if (f->data != NULL)
		munmap(f->data, f->len);
	f->data = NULL;
	f->len = 0;
}

long long
journal_scan(const struct journal_file *f, uint64_t *next, journal_frame_fn fn, void *arg)
{
	size_t off = 0;

	while (f->len - off >= JOURNAL_HEADER) {
		const uint8_t *h = f->data + off;
		uint32_t len = get32(h);
		uint64_t seq = get64(h + 8);

		if (len > JOURNAL_MAX_FRAME || f->len - off - JOURNAL_HEADER < len ||
		    (*next != 0 && seq != *next) || seq == 0 ||
		    get32(h + 4) != frame_crc(h + 8, h + JOURNAL_HEADER, len))
			break;
		if (fn != NULL && fn(seq, h + JOURNAL_HEADER, len, arg) != 0)
			return -1;
		*next = seq + 1;
		off += JOURNAL_HEADER + len;
	}
	return (long long)off;
}

/* Make the segment's directory entry durable (a new or removed file). */
static void
sync_dir(const char *path)
{
	char *copy = strdup(path);
	int fd;

	if (copy == NULL)
		return;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	free(copy);
}

/* Create the segment for frames from next; the fd, or -1 after logging. */
static int
segment_create(const char *base, uint64_t next, char **path)
{
	int fd;

	if (asprintf(path, "%s-jnl-%016" PRIx64, base, next) < 0) {
		*path = NULL;
		log_error("journal %s: out of memory", base);
		return -1;
	}
	fd = open(*path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0) {
		log_error("journal %s: cannot create it: %s", *path, strerror(errno));
		free(*path);
		*path = NULL;
		return -1;
	}
	sync_dir(*path);
	return fd;
}

struct journal *
journal_open(const char *base, uint64_t next)
{
	struct journal *j = calloc(1, sizeof *j);

	if (j == NULL || (j->base = strdup(base)) == NULL) {
		free(j);
		log_error("journal %s: out of memory", base);
		return NULL;
	}
	j->next = next;
	j->fd = segment_create(base, next, &j->path);
	if (j->fd < 0) {
		journal_close(j);
		return NULL;
	}
	return j;
}

void
journal_close(struct journal *j)
{
	if (j == NULL)
		return;
	if (j->fd >= 0)
		close(j->fd);
	free(j->path);
	free(j->base);
	free(j);
}

/* Cut the segment back to its last whole frame; 0 or -1. */
static int
journal_cut(struct journal *j)
{
	if (ftruncate(j->fd, (off_t)j->size) != 0) {
		log_error("journal %s: cannot cut off a failed write: %s", j->path,
			  strerror(errno));
		j->cut = true;
		return -1;
	}
	j->cut = false;
	return 0;
}

int
journal_append(struct journal *j, const void *payload, size_t len)
{
	uint8_t h[JOURNAL_HEADER];
	struct iovec iov[2] = {{h, sizeof h}, {(void *)(uintptr_t)payload, len}};
	size_t want = sizeof h + len, done = 0;
	int saved;

	if (len > JOURNAL_MAX_FRAME) {
		log_error("journal %s: a frame of %zu bytes is too long", j->path, len);
		errno = EFBIG;
		return -1;
	}
	if (j->cut && journal_cut(j) != 0) {
		errno = EIO;
		return -1;
	}
	put32(h, (uint32_t)len);
	put64(h + 8, j->next);
	put32(h + 4, frame_crc(h + 8, payload, len));
	while (done < want) {
		ssize_t w;

		errno = 0;
		w = writev(j->fd, iov, 2);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			goto fail;
		done += (size_t)w;
		/* A short write (a file size limit, a full disk): go on after it, or fail. */
		for (int i = 0; i < 2 && w > 0; i++) {
			size_t n = (size_t)w < iov[i].iov_len ? (size_t)w : iov[i].iov_len;
			iov[i].iov_base = (char *)iov[i].iov_base + n;
			iov[i].iov_len -= n;
			w -= (ssize_t)n;
		}
	}
	j->size += want;
	j->next++;
	j->last = want;
	return 0;
fail:
	saved = errno != 0 ? errno : ENOSPC;
	log_error("journal %s: write: %s", j->path, strerror(saved));
	if (done > 0)
		journal_cut(j);
	errno = saved;
	return -1;
}

int
journal_sync(struct journal *j)
{
	if (fdatasync(j->fd) == 0)
		return 0;
	log_error("journal %s: fdatasync: %s", j->path, strerror(errno));
	return -1;
}

int
journal_rotate(struct journal *j, char **closed)
{
	char *path;
	int fd;

	*closed = NULL;
	/*
	 * The finished segment is flushed first: the next one must never hold
	 * frames that a power loss could leave after a hole.
	 */
	if (journal_sync(j) != 0)
		return -1;
	fd = segment_create(j->base, j->next, &path);
	if (fd < 0)
		return -1;
	close(j->fd);
	*closed = j->path;
	j->path = path;
	j->fd = fd;
	j->size = j->last = 0;
	return 0;
}

int
journal_unappend(struct journal *j)
{
	if (j->last == 0)
		return -1;
	j->size -= j->last;
	j->next--;
	j->last = 0;
	return journal_cut(j);
}

const char *
journal_path(const struct journal *j)
{
	return j->path;
}

uint64_t
journal_size(const struct journal *j)
{
	return j->size;
}

uint64_t
journal_next(const struct journal *j)
{
	return j->next;
}
