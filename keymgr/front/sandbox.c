/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#ifdef KEYMGR_SECCOMP
#include <seccomp.h>
#endif

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "keymgr/common/error.h"
#include "keymgr/common/no_dump.h"
#include "keymgr/front/sandbox.h"

int km_sandbox_preload(char *err, size_t errlen)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	/* glibc reads the time zone file at the first gmtime_r (the Date and Last-Modified
	 * headers), then never again */
	time_t t = time(NULL);
	struct tm tm;
	tzset();
	gmtime_r(&t, &tm);
	if (OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, NULL) != 1 ||
	    EVP_Digest("", 0, md, &len, EVP_sha256(), NULL) != 1) {
		snprintf(err, errlen, "OpenSSL's SHA-256 is not available");
		return KM_EIO;
	}
	return KM_EOK;
}

int km_sandbox_limits(unsigned nofile, char *err, size_t errlen)
{
	struct rlimit rl = { nofile, nofile }, cur;
	/* Not root: the hard limit cannot be raised; the listener makes do with it. */
	if (getrlimit(RLIMIT_NOFILE, &cur) == 0 && geteuid() != 0 && cur.rlim_max < nofile)
		rl.rlim_cur = rl.rlim_max = cur.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
		snprintf(err, errlen, "setrlimit RLIMIT_NOFILE %u: %s", nofile, strerror(errno));
		return KM_EIO;
	}
	return km_process_no_dump(err, errlen);
}

int km_sandbox_drop(const char *user, char *err, size_t errlen)
{
	if (geteuid() == 0) {
		struct passwd pw, *res = NULL;
		char buf[4096];
		int e = getpwnam_r(user, &pw, buf, sizeof(buf), &res);
		if (res == NULL) {
			snprintf(err, errlen, "user '%s' %s", user, e ? strerror(e) : "does not exist");
			return e ? KM_EIO : KM_ENOENT;
		}
		if (pw.pw_uid == 0) {
			snprintf(err, errlen, "user '%s' is root: the listener never runs as root", user);
			return KM_EIO;
		}
		if (setgroups(0, NULL) != 0 || setgid(pw.pw_gid) != 0 || setuid(pw.pw_uid) != 0) {
			snprintf(err, errlen, "cannot become user '%s': %s", user, strerror(errno));
			return KM_EIO;
		}
		/* no way back */
		if (setuid(0) == 0) {
			snprintf(err, errlen, "still able to become root after dropping to '%s'", user);
			return KM_EIO;
		}
	}
	if (geteuid() == 0 || getuid() == 0) {
		snprintf(err, errlen, "the listener refuses to run as root");
		return KM_EIO;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		snprintf(err, errlen, "prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(errno));
		return KM_EIO;
	}
	/* PR_SET_DUMPABLE is reset by the change of uid: set it again. */
	return km_process_no_dump(err, errlen);
}

#ifdef KEYMGR_SECCOMP
/* What a serving libmicrohttpd (epoll, thread pool), its acceptor thread, glibc's malloc
 * and the channel loop call. Nothing opens a file, a new socket, or executes anything. */
static const int allowed[] = {
	SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev),
	SCMP_SYS(recvfrom), SCMP_SYS(recvmsg), SCMP_SYS(sendto), SCMP_SYS(sendmsg),
	SCMP_SYS(sendfile), SCMP_SYS(close), SCMP_SYS(shutdown),
	SCMP_SYS(accept), SCMP_SYS(accept4), SCMP_SYS(listen),
	SCMP_SYS(setsockopt), SCMP_SYS(getsockopt), SCMP_SYS(getsockname), SCMP_SYS(getpeername),
	SCMP_SYS(fcntl), SCMP_SYS(ioctl),
	SCMP_SYS(epoll_wait), SCMP_SYS(epoll_pwait), SCMP_SYS(epoll_ctl),
	SCMP_SYS(epoll_create), SCMP_SYS(epoll_create1),
	SCMP_SYS(poll), SCMP_SYS(ppoll), SCMP_SYS(select), SCMP_SYS(pselect6),
	SCMP_SYS(eventfd2), SCMP_SYS(pipe2),
	SCMP_SYS(futex), SCMP_SYS(set_robust_list), SCMP_SYS(rseq), SCMP_SYS(sched_yield),
	SCMP_SYS(sched_getaffinity),
	SCMP_SYS(brk), SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(mprotect),
	SCMP_SYS(madvise),
	SCMP_SYS(clock_gettime), SCMP_SYS(clock_getres), SCMP_SYS(gettimeofday), SCMP_SYS(time),
	SCMP_SYS(nanosleep), SCMP_SYS(clock_nanosleep),
	SCMP_SYS(getpid), SCMP_SYS(gettid), SCMP_SYS(getuid), SCMP_SYS(geteuid),
	SCMP_SYS(getgid), SCMP_SYS(getegid), SCMP_SYS(getrandom),
	SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigreturn), SCMP_SYS(sigaltstack),
	SCMP_SYS(restart_syscall), SCMP_SYS(tgkill), SCMP_SYS(exit), SCMP_SYS(exit_group),
};
#endif

int km_sandbox_seccomp(bool *installed, char *err, size_t errlen)
{
	*installed = false;
#ifdef KEYMGR_SECCOMP
	int r = KM_EIO;
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (ctx == NULL) {
		snprintf(err, errlen, "seccomp_init failed");
		return KM_EIO;
	}
	int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	for (size_t i = 0; rc == 0 && i < sizeof(allowed) / sizeof(allowed[0]); i++)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0);
	/* Threads only (pthread_create: CLONE_THREAD), never a process; clone3's flags live in
	 * memory a filter cannot read: ENOSYS makes glibc fall back to clone. */
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
		                      SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	if (rc == 0)
		rc = seccomp_load(ctx);
	if (rc != 0)
		snprintf(err, errlen, "seccomp: %s", strerror(-rc));
	else
		r = KM_EOK;
	seccomp_release(ctx);
	*installed = r == KM_EOK;
	return r;
#else
	(void)err;
	(void)errlen;
	return KM_EOK;
#endif
}
