/* SPDX-License-Identifier: Apache-2.0 */
/* The change lock of an environment: flock(2) on STORE.lock (change_lock.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "keymgr/common/error.h"
#include "keymgr/store/change_lock.h"
#include "keymgr/store/store_int.h"

#define POLL_NS 5000000L /* 5 ms between tries */
#define MAX_RAISE KM_STORE_CHANGE_MAX_RAISE

static int64_t elapsed_ms(const struct timespec *since)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)(now.tv_sec - since->tv_sec) * 1000 +
	       (now.tv_nsec - since->tv_nsec) / 1000000;
}

/* The holder's record ("pid=N prog=NAME op=OP") as "pid N, NAME OP", or "pid unknown". */
static void holder(int fd, char *out, size_t len)
{
	char rec[160];
	ssize_t n = pread(fd, rec, sizeof(rec) - 1, 0);
	long pid = 0;
	char prog[40] = "", op[40] = "";
	rec[n > 0 ? n : 0] = '\0';
	if (n > 0 && sscanf(rec, "pid=%ld prog=%39s op=%39[^\n]", &pid, prog, op) == 3 && pid > 0)
		snprintf(out, len, "pid %ld, %s %s", pid, prog, op);
	else
		snprintf(out, len, "pid unknown");
}

/* Writes this process's record over the file (best effort: only messages read it). */
static void write_record(int fd, const char *op)
{
	if ((fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDONLY)
		return;
	char rec[160];
	int n = snprintf(rec, sizeof(rec), "pid=%ld prog=%s op=%s\n", (long)getpid(),
	                 program_invocation_short_name, op);
	if (n > 0 && (size_t)n < sizeof(rec) && ftruncate(fd, 0) == 0 &&
	    pwrite(fd, rec, (size_t)n, 0) != n) {
		/* A short record only makes a waiter's message say "pid unknown". */
	}
}

int km_store_change_lock(km_store_t *s, const char *op, int wait_ms, char *err, size_t errlen)
{
	if (s->lock_path == NULL)
		return KM_EOK;
	if (s->lock_depth > 0) {
		s->lock_depth++;
		return KM_EOK;
	}
	int r = KM_EIO;
	struct stat st;
	struct timespec start;
	/* O_NONBLOCK: a FIFO planted under the name must not hang the open. */
	const int flags = O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK;
	int fd = open(s->lock_path, O_RDWR | O_CREAT | flags, 0600);
	/* A read-only store (file system, directory): flock needs no write access, so an existing
	 * lock file still locks (without a record), and the store then refuses the change with
	 * its own message. */
	if (fd < 0 && (errno == EROFS || errno == EACCES || errno == EPERM))
		fd = open(s->lock_path, O_RDONLY | flags);
	if (fd < 0) {
		int e = errno;
		int n = (int)strlen(s->lock_path) - (int)(sizeof(".lock") - 1);
		snprintf(err, errlen, "environment '%s': cannot create the change lock of the store "
		         "%.*s (%s): %s", s->env, n, s->lock_path, s->lock_path,
		         e == EROFS ? "the store is on a read-only file system" : strerror(e));
		return KM_EIO;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "environment '%s': its lock file %s is not a regular file",
		         s->env, s->lock_path);
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &start);
	while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK) {
			snprintf(err, errlen, "environment '%s': cannot lock %s: %s", s->env,
			         s->lock_path, strerror(errno));
			goto out;
		}
		if (elapsed_ms(&start) >= wait_ms) {
			char who[128];
			holder(fd, who, sizeof(who));
			snprintf(err, errlen, "environment '%s' is being changed by another keymgr "
			         "process (%s); gave up after waiting %d s, nothing was changed: try "
			         "again once it has finished", s->env, who, (wait_ms + 999) / 1000);
			r = KM_STORE_EBUSY;
			goto out;
		}
		struct timespec ts = { 0, POLL_NS };
		nanosleep(&ts, NULL);
	}
	write_record(fd, op);
	s->lock_fd = fd;
	s->lock_depth = 1;
	return KM_EOK;
out:
	close(fd);
	return r;
}

/* The time of the newest audit event (every change records one), 0 when there is none. */
static int latest_change_at(km_store_t *s, int64_t *at, char *err, size_t errlen)
{
	char hash[KM_STORE_HASH_HEX + 1];
	int64_t seq = 0;
	km_store_audit_event_t *ev = NULL;
	size_t n = 0;
	*at = 0;
	int r = km_store_audit_head(s, &seq, hash, err, errlen);
	if (r != KM_EOK || seq == 0)
		return r;
	km_store_audit_filter_t f = { .from_seq = seq, .to_seq = seq };
	if ((r = km_store_audit_query(s, &f, &ev, &n, err, errlen)) != KM_EOK)
		return r;
	if (n > 0)
		*at = ev[0].at;
	km_store_audit_events_free(ev, n);
	return KM_EOK;
}

int km_store_change_lock_at(km_store_t *s, const char *op, int wait_ms, int64_t *now,
                            char *err, size_t errlen)
{
	struct timespec start;
	int64_t latest;
	bool nested = s->lock_depth > 0;
	clock_gettime(CLOCK_MONOTONIC, &start);
	int r = km_store_change_lock(s, op, wait_ms, err, errlen);
	if (r != KM_EOK)
		return r;
	/* Rounded up: a time recorded late by under a second delays, never hastens. (A nested
	 * hold waited for nothing: rounding its microseconds up would only move a change of
	 * the outer one a second ahead of the others.) */
	if (!nested)
		*now += (elapsed_ms(&start) + 999) / 1000;
	/* The rounding can put a change up to 1 s ahead of the clock, and a caller may have
	 * read its clock before another process's change: never record a time before the
	 * newest one already recorded (a key retired before its activation). Only by up to
	 * MAX_RAISE: a newest time further ahead comes from a clock that was wrong, and
	 * following it would hold every later change at that time until the clock caught up. */
	if ((r = latest_change_at(s, &latest, err, errlen)) != KM_EOK) {
		km_store_change_unlock(s);
		return r;
	}
	if (latest > *now && latest - *now <= MAX_RAISE)
		*now = latest;
	return KM_EOK;
}

void km_store_change_unlock(km_store_t *s)
{
	if (s->lock_depth == 0 || --s->lock_depth > 0)
		return;
	/* An empty record: a later waiter never names a process that has finished. (Fails
	 * harmlessly on a read-only descriptor, which wrote none.) */
	if (ftruncate(s->lock_fd, 0) != 0) {
		/* Only a later message could name this process; the lock is released anyway. */
	}
	close(s->lock_fd); /* releases the flock */
	s->lock_fd = -1;
}

void km_store__change_lock_close(km_store_t *s)
{
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	s->lock_fd = -1;
	s->lock_depth = 0;
}
