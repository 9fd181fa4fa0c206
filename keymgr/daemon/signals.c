/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "keymgr/daemon/signals.h"

static int pipe_fd[2] = { -1, -1 };
static volatile sig_atomic_t got_hup;
static volatile sig_atomic_t got_stop;

static void wake(void)
{
	int saved = errno;
	char c = 1;
	ssize_t w = write(pipe_fd[1], &c, 1); /* a full pipe already wakes the loop */
	(void)w;
	errno = saved;
}

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		got_hup = 1;
	else
		got_stop = 1;
	wake();
}

int kd_signals_init(void)
{
	if (pipe2(pipe_fd, O_CLOEXEC | O_NONBLOCK) != 0)
		return -1;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	if (sigaction(SIGHUP, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0 ||
	    sigaction(SIGINT, &sa, NULL) != 0)
		return -1;
	signal(SIGPIPE, SIG_IGN);
	return pipe_fd[0];
}

void kd_signals_drain(void)
{
	char buf[64];
	while (read(pipe_fd[0], buf, sizeof(buf)) > 0)
		;
}

bool kd_signals_take_reload(void)
{
	if (!got_hup)
		return false;
	got_hup = 0;
	return true;
}

bool kd_signals_stop_requested(void)
{
	return got_stop != 0;
}

void kd_signals_request_stop(void)
{
	got_stop = 1;
	wake();
}
