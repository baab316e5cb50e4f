/*
 * fuzz.h: what the libFuzzer targets share.  CHECK() states an invariant
 * of the code under test; a broken one aborts, which libFuzzer reports as
 * a crash with the input that caused it.
 */
#ifndef RELAY_FUZZ_H
#define RELAY_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define CHECK(x) do {							\
	if (!(x)) {							\
		fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #x);	\
		abort();						\
	}								\
} while (0)

#endif /* RELAY_FUZZ_H */
