/*
 * benchchild: the children the benchmark runs under each wrapper.
 *
 *   benchchild write OUT_BYTES ERR_BYTES RUSAGE_FILE
 *       Writes OUT_BYTES to stdout and ERR_BYTES to stderr from two threads at
 *       once, as 128-byte text lines in 128 KiB writes, then writes its own
 *       user and system CPU time (RUSAGE_SELF, microseconds) to RUSAGE_FILE
 *       and exits 0.
 *   benchchild stamp
 *       Prints "S <ns>" (CLOCK_MONOTONIC on entry to main) and "E <ns>" (just
 *       before _exit) on stdout and exits 1.
 *   benchchild term
 *       Blocks SIGTERM, prints "ready", waits for SIGTERM (30 s at most),
 *       prints "T <ns>" with the CLOCK_MONOTONIC time it received it, exits 0.
 *   benchchild partial COUNT INTERVAL_US
 *       COUNT times, writes "\rP<19-digit CLOCK_MONOTONIC ns>" with no
 *       newline, then sleeps INTERVAL_US; finally writes "\n" and exits 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

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

#define LINE 128
#define CHUNK (128 * 1024)

struct stream {
	int fd;
	long long bytes;
	int failed;
};

static void *writer(void *arg) {
	struct stream *s = arg;
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 =:.,";
	char *buf = malloc(CHUNK);
	if (buf == NULL) {
		s->failed = 1;
		return NULL;
	}
	for (int i = 0; i < CHUNK; i++)
		buf[i] = (i % LINE == LINE - 1) ? '\n' : alphabet[(i * 7 + i / LINE) % (sizeof alphabet - 1)];
	for (int i = 0; i < CHUNK; i += LINE)
		memcpy(buf + i, s->fd == 1 ? "step " : "warn ", 5);
	long long left = s->bytes;
	while (left > 0) {
		size_t n = left < CHUNK ? (size_t)left : CHUNK;
		if (write_all(s->fd, buf, n) < 0) {
			s->failed = 1;
			break;
		}
		left -= (long long)n;
	}
	free(buf);
	return NULL;
}

static int mode_write(int argc, char **argv) {
	if (argc != 5)
		return 2;
	struct stream out = {1, atoll(argv[2]), 0};
	struct stream err = {2, atoll(argv[3]), 0};
	pthread_t t;
	if (pthread_create(&t, NULL, writer, &err) != 0)
		return 2;
	writer(&out);
	pthread_join(t, NULL);
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	FILE *f = fopen(argv[4], "w");
	if (f == NULL)
		return 2;
	fprintf(f, "%lld %lld\n",
	        (long long)ru.ru_utime.tv_sec * 1000000LL + ru.ru_utime.tv_usec,
	        (long long)ru.ru_stime.tv_sec * 1000000LL + ru.ru_stime.tv_usec);
	if (fclose(f) != 0)
		return 2;
	return (out.failed || err.failed) ? 3 : 0;
}

static int mode_stamp(long long start) {
	char buf[64];
	int n = snprintf(buf, sizeof buf, "S %lld\n", start);
	write_all(1, buf, (size_t)n);
	n = snprintf(buf, sizeof buf, "E %lld\n", now_ns());
	write_all(1, buf, (size_t)n);
	_exit(1);
}

static int mode_term(void) {
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	write_all(1, "ready\n", 6);
	struct timespec limit = {30, 0};
	int sig = sigtimedwait(&set, NULL, &limit);
	long long t = now_ns();
	if (sig != SIGTERM)
		return 4;
	char buf[64];
	int n = snprintf(buf, sizeof buf, "T %lld\n", t);
	write_all(1, buf, (size_t)n);
	return 0;
}

static int mode_partial(int argc, char **argv) {
	if (argc != 4)
		return 2;
	int count = atoi(argv[2]);
	long interval = atol(argv[3]);
	struct timespec pause = {interval / 1000000, (interval % 1000000) * 1000};
	for (int i = 0; i < count; i++) {
		char buf[32];
		int n = snprintf(buf, sizeof buf, "\rP%019lld", now_ns());
		if (write_all(1, buf, (size_t)n) < 0)
			return 3;
		nanosleep(&pause, NULL);
	}
	return write_all(1, "\n", 1) < 0 ? 3 : 0;
}

int main(int argc, char **argv) {
	long long start = now_ns();
	if (argc < 2) {
		fprintf(stderr, "usage: benchchild write|stamp|term|partial ...\n");
		return 2;
	}
	if (strcmp(argv[1], "write") == 0)
		return mode_write(argc, argv);
	if (strcmp(argv[1], "stamp") == 0)
		return mode_stamp(start);
	if (strcmp(argv[1], "term") == 0)
		return mode_term();
	if (strcmp(argv[1], "partial") == 0)
		return mode_partial(argc, argv);
	fprintf(stderr, "benchchild: unknown mode %s\n", argv[1]);
	return 2;
}
