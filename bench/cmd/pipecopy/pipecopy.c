/*
 * pipecopy: the reference wrapper for the pass-through benchmark.
 *
 *   pipecopy [--] COMMAND [ARG...]
 *
 * Runs COMMAND with its stdout and stderr connected to two pipes and copies
 * both to its own stdout and stderr with read(2)/write(2) in 64 KiB chunks,
 * driven by poll(2). No line scanning, no buffering beyond one chunk. Exits
 * with the child's exit code (128+N when the child died of signal N).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHUNK (64 * 1024)

static int write_all(int fd, const char *p, size_t n) {
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int main(int argc, char **argv) {
	int first = 1;
	if (first < argc && strcmp(argv[first], "--") == 0)
		first++;
	if (first >= argc) {
		fprintf(stderr, "usage: pipecopy [--] COMMAND [ARG...]\n");
		return 2;
	}
	int out[2], err[2];
	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
		perror("pipecopy: pipe2");
		return 2;
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("pipecopy: fork");
		return 2;
	}
	if (pid == 0) {
		if (dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0)
			_exit(127);
		execvp(argv[first], argv + first);
		_exit(127);
	}
	close(out[1]);
	close(err[1]);

	static char buf[CHUNK];
	struct pollfd pfd[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
	int dst[2] = {1, 2};
	int open_fds = 2;
	while (open_fds > 0) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("pipecopy: poll");
			return 2;
		}
		for (int i = 0; i < 2; i++) {
			if (pfd[i].fd < 0 || pfd[i].revents == 0)
				continue;
			ssize_t n = read(pfd[i].fd, buf, sizeof buf);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				close(pfd[i].fd);
				pfd[i].fd = -1;
				open_fds--;
				continue;
			}
			if (write_all(dst[i], buf, (size_t)n) < 0) {
				/* Destination gone: keep draining so the child is not blocked. */
				dst[i] = -1;
			}
		}
	}
	int status;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			perror("pipecopy: waitpid");
			return 2;
		}
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 2;
}
