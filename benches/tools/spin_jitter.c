/* spin_jitter: how long a CPU is taken away from a spinning thread.
 *
 * Spins on clock_gettime(CLOCK_MONOTONIC) for SECS seconds and counts the gaps between two
 * consecutive reads by length (>= 50 us, >= 200 us, >= 1 ms, >= 5 ms) and the longest one: the
 * same buckets as the "loop stalls" line of `xskd run`, for a loop that does nothing else, so a
 * stall seen by both is the platform's (hypervisor, interrupts), not the engine's.
 *
 *   cc -O2 -o /tmp/spin_jitter benches/tools/spin_jitter.c && taskset -c 1 /tmp/spin_jitter 20
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long long now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 10.0;
	long long end = now_ns() + (long long)(secs * 1e9), prev = now_ns(), max = 0;
	long buckets[4] = { 0 };

	for (;;) {
		long long n = now_ns(), gap = n - prev;

		prev = n;
		if (n > end)
			break;
		if (gap < 50000)
			continue;
		if (gap > max)
			max = gap;
		buckets[gap >= 5000000 ? 3 : gap >= 1000000 ? 2 : gap >= 200000 ? 1 : 0]++;
	}
	printf(">=50us:%ld >=200us:%ld >=1ms:%ld >=5ms:%ld max %.1f us\n", buckets[0], buckets[1], buckets[2],
	       buckets[3], max / 1e3);
	return 0;
}
