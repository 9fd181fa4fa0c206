/* SPDX-License-Identifier: Apache-2.0 */
/* The change lock of an environment: flock(2) on STORE.lock, or a row of the store for
 * backends without a lock file (change_lock.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
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

static void give_up(km_store_t *s, const char *who, int wait_ms, char *err, size_t errlen)
{
	snprintf(err, errlen, "environment '%s' is being changed by another keymgr process (%s); "
	         "gave up after waiting %d s, nothing was changed: try again once it has finished",
	         s->env, who, (wait_ms + 999) / 1000);
}

/* A row holder "pid=N host=H prog=P op=OP" as "pid N on H, P OP". */
static void row_holder(const char *rec, char *out, size_t len, long *pid, char *host,
                       size_t hostlen)
{
	char h[65] = "", prog[40] = "", op[40] = "";
	*pid = 0;
	if (sscanf(rec, "pid=%ld host=%64s prog=%39s op=%39[^\n]", pid, h, prog, op) == 4 &&
	    *pid > 0) {
		snprintf(out, len, "pid %ld on %s, %s %s", *pid, h, prog, op);
		snprintf(host, hostlen, "%s", h);
	} else {
		snprintf(out, len, "pid unknown");
		*pid = 0;
	}
}

/* The change lock as a row of the store (PostgreSQL): polled every 50 ms while another
 * process holds it; a holder on this host whose pid is gone is taken over at once. */
static int row_lock(km_store_t *s, const char *op, int wait_ms, char *err, size_t errlen)
{
	char me[160], host[65] = "", cur[256] = "", stale[256] = "";
	int64_t epoch = 0, cur_epoch = 0, stale_epoch = 0;
	struct timespec start;
	if (gethostname(host, sizeof(host) - 1) != 0)
		snprintf(host, sizeof(host), "unknown");
	snprintf(me, sizeof(me), "pid=%ld host=%s prog=%s op=%s", (long)getpid(), host,
	         program_invocation_short_name, op);
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		cur[0] = '\0';
		int r = s->be->lock_take(s->ctx, me, stale[0] ? stale : NULL, stale_epoch,
		                         KM_STORE_CHANGE_LOCK_TTL_S, &epoch, cur, sizeof(cur),
		                         &cur_epoch, err, errlen);
		if (r != KM_EOK)
			return r;
		if (epoch != 0)
			break;
		char who[160], their_host[65] = "";
		long pid = 0;
		row_holder(cur, who, sizeof(who), &pid, their_host, sizeof(their_host));
		/* Its process is gone (this host's pids only): take the lock from it now. */
		if (pid > 0 && strcmp(their_host, host) == 0 && kill((pid_t)pid, 0) != 0 &&
		    errno == ESRCH) {
			snprintf(stale, sizeof(stale), "%s", cur);
			stale_epoch = cur_epoch;
			continue;
		}
		if (elapsed_ms(&start) >= wait_ms) {
			give_up(s, who, wait_ms, err, errlen);
			return KM_STORE_EBUSY;
		}
		struct timespec ts = { 0, 50000000L };
		nanosleep(&ts, NULL);
	}
	s->lock_epoch = epoch;
	s->lock_depth = 1;
	return KM_EOK;
}

int km_store_change_lock(km_store_t *s, const char *op, int wait_ms, char *err, size_t errlen)
{
	if (s->lock_depth > 0) {
		s->lock_depth++;
		return KM_EOK;
	}
	if (s->be->lock_take != NULL)
		return row_lock(s, op, wait_ms, err, errlen);
	if (s->lock_path == NULL)
		return KM_EOK;
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
			give_up(s, who, wait_ms, err, errlen);
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
	if (s->lock_epoch != 0) {
		/* A release that fails leaves the row to expire (KM_STORE_CHANGE_LOCK_TTL_S). */
		(void)s->be->lock_release(s->ctx, s->lock_epoch, NULL, 0);
		s->lock_epoch = 0;
		return;
	}
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
	if (s->lock_epoch != 0)
		(void)s->be->lock_release(s->ctx, s->lock_epoch, NULL, 0);
	s->lock_epoch = 0;
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	s->lock_fd = -1;
	s->lock_depth = 0;
}
