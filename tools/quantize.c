/*
 * infergw-quantize - write the INT8 variant of an FP32 model directory
 * (backends/model/quant.c; docs/model-format.md "INT8 variants").
 *
 *   infergw-quantize IN_DIR OUT_DIR [--calibration FILE] [--force]
 *
 * Exit 0 written, 1 bad input or a failed write (the reason on stderr),
 * 2 bad usage.
 */
#include "model/quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
	fprintf(f,
		"usage: infergw-quantize IN_DIR OUT_DIR [--calibration FILE] [--force]\n"
		"  Reads the FP32 model in IN_DIR (model.yaml + safetensors) and writes its\n"
		"  INT8 variant to OUT_DIR: s8 weights with per-output-channel symmetric\n"
		"  scales (max|w|/127); activations quantized per row at run time, or with\n"
		"  static per-layer scales calibrated (max|x|/127) on FILE's `features`\n"
		"  tensor (F32 [N, input width]) with --calibration.\n"
		"  --force  write into OUT_DIR even if it exists and is not empty\n");
}

int main(int argc, char **argv)
{
	struct quant_opts o = { 0 };
	const char *pos[2] = { NULL, NULL };
	char *err = NULL;
	int i, n = 0;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--force") == 0) {
			o.force = true;
		} else if (strcmp(argv[i], "--calibration") == 0) {
			if (++i == argc) {
				fprintf(stderr, "infergw-quantize: --calibration needs a FILE\n");
				return 2;
			}
			o.calibration = argv[i];
		} else if (argv[i][0] == '-' && argv[i][1]) {
			fprintf(stderr, "infergw-quantize: unknown option %s\n", argv[i]);
			usage(stderr);
			return 2;
		} else if (n < 2) {
			pos[n++] = argv[i];
		} else {
			fprintf(stderr, "infergw-quantize: unexpected argument %s\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (n != 2) {
		usage(stderr);
		return 2;
	}
	if (quant_model(pos[0], pos[1], &o, &err)) {
		fprintf(stderr, "infergw-quantize: %s\n", err ? err : "failed");
		free(err);
		return 1;
	}
	printf("infergw-quantize: wrote %s (INT8 variant of %s)\n", pos[1], pos[0]);
	return 0;
}
