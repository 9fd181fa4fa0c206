/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/cli/run.h"

static void append(int fd, char *buf, size_t cap, size_t *len, int *open_)
{
	char tmp[4096];
	ssize_t n = read(fd, tmp, sizeof(tmp));
	if (n <= 0) {
		if (n < 0 && errno == EINTR)
			return;
		*open_ = 0;
		return;
	}
	size_t take = (size_t)n;
	if (take > cap - 1 - *len)
		take = cap - 1 - *len;
	memcpy(buf + *len, tmp, take);
	*len += take;
	buf[*len] = '\0';
}

int km_run(const char *exe, const char *const *argv, const char *stdin_text, km_run_t *r)
{
	int po[2], pe[2], pi[2];
	size_t lo = 0, le = 0;
	int wstatus = 0;

	memset(r, 0, sizeof(*r));
	if (pipe(po) < 0 || pipe(pe) < 0 || pipe(pi) < 0)
		return -1;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(pi[0], 0);
		dup2(po[1], 1);
		dup2(pe[1], 2);
		close(pi[0]); close(pi[1]); close(po[0]); close(po[1]); close(pe[0]); close(pe[1]);
		execv(exe, (char *const *)argv);
		_exit(127);
	}
	close(pi[0]);
	close(po[1]);
	close(pe[1]);
	if (stdin_text != NULL) {
		/* Small inputs only: fits in the pipe buffer. */
		ssize_t w = write(pi[1], stdin_text, strlen(stdin_text));
		(void)w;
	}
	close(pi[1]);
	int oo = 1, oe = 1;
	while (oo || oe) {
		struct pollfd fds[2] = { { oo ? po[0] : -1, POLLIN, 0 },
		                         { oe ? pe[0] : -1, POLLIN, 0 } };
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (oo && (fds[0].revents & (POLLIN | POLLHUP)))
			append(po[0], r->out, sizeof(r->out), &lo, &oo);
		if (oe && (fds[1].revents & (POLLIN | POLLHUP)))
			append(pe[0], r->err, sizeof(r->err), &le, &oe);
	}
	close(po[0]);
	close(pe[0]);
	while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
		;
	r->status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
	return 0;
}
