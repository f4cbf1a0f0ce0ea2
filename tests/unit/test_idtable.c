/* The session-id table: finds what it holds, through growth, shrinking and removal. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "idtable.h"
#include "util.h"

#define N 200000

struct item {
	uint8_t id[SESSION_ID_BYTES];
	struct idnode node;
	int present;
	int visited;
};

static struct idtable table;

static struct item *
find(const uint8_t *id)
{
	struct idnode *n = idtable_find(&table, id);

	return n != NULL ? container_of(n, struct item, node) : NULL;
}

/* Every item is found exactly when present; absent ids are not. */
static int
all_consistent(struct item *items, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct item *f = find(items[i].id);
		if (items[i].present ? f != &items[i] : f != NULL)
			return 0;
	}
	return 1;
}

static void
visit(struct idnode *n, void *arg)
{
	(void)arg;
	container_of(n, struct item, node)->visited++;
}

static void
remove_visited(struct idnode *n, void *arg)
{
	struct item *it = container_of(n, struct item, node);

	(*(size_t *)arg)++;
	idtable_remove(&table, n);
	it->present = 0;
}

int
main(void)
{
	struct item *items = calloc(N, sizeof *items);
	uint8_t absent[SESSION_ID_BYTES];
	size_t count = 0, max_buckets = 0, removed = 0;
	int mid_resize_checked = 0;

	CHECK(items != NULL);
	CHECK(idtable_init(&table, (ptrdiff_t)offsetof(struct item, id) -
					   (ptrdiff_t)offsetof(struct item, node)) == 0);
	CHECK(idtable_count(&table) == 0);
	memset(absent, 0xab, sizeof absent);
	CHECK(find(absent) == NULL);

	/* Ids that share their first 8 bytes must still be told apart. */
	for (size_t i = 0; i < N; i++) {
		if (i < 1000) {
			memset(items[i].id, 0x11, 8);
			memcpy(items[i].id + 8, &i, sizeof i);
		} else {
			CHECK(random_bytes(items[i].id, SESSION_ID_BYTES) == 0);
		}
	}

	for (size_t i = 0; i < N; i++) {
		idtable_insert(&table, &items[i].node);
		items[i].present = 1;
		count++;
		if (table.size[0] > max_buckets)
			max_buckets = table.size[0];
		/* In the middle of a resize, everything is still found. */
		if (table.t[1] != NULL && table.moved > 0 && !mid_resize_checked &&
		    table.size[0] >= 4096) {
			CHECK(all_consistent(items, i + 1));
			mid_resize_checked = 1;
		}
	}
	CHECK(mid_resize_checked);
	CHECK(idtable_count(&table) == N);
	CHECK(all_consistent(items, N));
	/* Growth keeps chains short: about one entry per bucket. */
	CHECK_MSG(max_buckets >= N / 2, "only %zu buckets for %d entries", max_buckets, N);

	/* Remove all but every 16th: the table shrinks, the rest stay found. */
	for (size_t i = 0; i < N; i++) {
		if (i % 16 != 0) {
			idtable_remove(&table, &items[i].node);
			items[i].present = 0;
			count--;
		}
	}
	CHECK(idtable_count(&table) == count);
	CHECK(all_consistent(items, N));
	for (int i = 0; i < 100 && table.t[1] != NULL; i++) {
		/* Finish a resize in progress: insert and remove one entry. */
		idtable_insert(&table, &items[1].node);
		idtable_remove(&table, &items[1].node);
	}
	CHECK_MSG(table.size[0] <= max_buckets / 4 && table.size[0] <= 8 * count,
		  "still %zu buckets for %zu entries", table.size[0], count);
	CHECK(all_consistent(items, N));

	/* foreach sees each entry once, and may remove the entry it is given. */
	idtable_foreach(&table, visit, NULL);
	for (size_t i = 0; i < N; i++)
		CHECK_MSG(items[i].visited == items[i].present, "item %zu visited %d times", i,
			  items[i].visited);
	idtable_foreach(&table, remove_visited, &removed);
	CHECK(removed == count);
	CHECK(idtable_count(&table) == 0);
	CHECK(all_consistent(items, N));

	/* Empty again, it still works. */
	idtable_insert(&table, &items[7].node);
	CHECK(find(items[7].id) == &items[7]);
	idtable_remove(&table, &items[7].node);
	CHECK(find(items[7].id) == NULL);

	idtable_finish(&table);
	free(items);
	return check_done("idtable");
}
