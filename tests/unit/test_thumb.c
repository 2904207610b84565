/* thumb (issue 16 C): the agent's picture evidence — a synthetic camera frame encoded by the
 * real libswscale + mjpeg path fits the collector's bounds and decodes back with FFmpeg's own
 * JPEG decoder; a frame too detailed for the first quality is coarsened until it fits; when
 * a result carries one; and the outbox keeps the JPEG with its row, sends it as base64 in
 * the batch, counts it toward the byte bound and releases it with the ack. */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <libavcodec/avcodec.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "outbox.h"
#include "testdir.h"
#include "thumb.h"

/* A camera-sized YUV 4:2:0 frame: a gradient with bars (a room's edges), or, with noise,
 * pixels no JPEG compresses well (the hardest case for the size bound). */
static AVFrame *frame(int w, int h, int noise, int luma)
{
	AVFrame *f = av_frame_alloc();
	assert_non_null(f);
	f->format = AV_PIX_FMT_YUV420P;
	f->width = w;
	f->height = h;
	assert_int_equal(av_frame_get_buffer(f, 0), 0);
	uint32_t rng = 12345;
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++) {
			int v = luma >= 0 ? luma : (x * 255 / w + ((x / 64) % 2) * 40) % 256;
			if (noise) {
				rng = rng * 1103515245u + 12345u;
				v = (int)(rng >> 24);
			}
			f->data[0][y * f->linesize[0] + x] = (uint8_t)v;
		}
	for (int p = 1; p < 3; p++)
		for (int y = 0; y < h / 2; y++)
			memset(f->data[p] + y * f->linesize[p], noise ? (y * 7) & 0xff : 128,
			       (size_t)w / 2);
	return f;
}

/* Decodes jpeg with FFmpeg's mjpeg decoder: its size and mean luma. */
static void decode(const uint8_t *jpeg, size_t len, int *w, int *h, double *mean)
{
	const AVCodec *c = avcodec_find_decoder(AV_CODEC_ID_MJPEG);
	assert_non_null(c);
	AVCodecContext *d = avcodec_alloc_context3(c);
	assert_int_equal(avcodec_open2(d, c, NULL), 0);
	AVPacket *pkt = av_packet_alloc();
	AVFrame *f = av_frame_alloc();
	assert_int_equal(av_new_packet(pkt, (int)len), 0);
	memcpy(pkt->data, jpeg, len);
	assert_int_equal(avcodec_send_packet(d, pkt), 0);
	assert_int_equal(avcodec_receive_frame(d, f), 0);
	*w = f->width;
	*h = f->height;
	double s = 0;
	for (int y = 0; y < f->height; y++)
		for (int x = 0; x < f->width; x++)
			s += f->data[0][y * f->linesize[0] + x];
	*mean = s / (f->width * f->height);
	av_frame_free(&f);
	av_packet_free(&pkt);
	avcodec_free_context(&d);
}

static void a_1080p_frame_fits_and_decodes(void **state)
{
	(void)state;
	AVFrame *f = frame(1920, 1080, 0, -1);
	uint8_t *jpeg;
	size_t len;
	struct thumb_stats st;
	assert_int_equal(thumb_encode(f, VW_THUMB_MAX_WIDTH, VW_THUMB_MAX_BYTES, &jpeg, &len, &st),
	                 0);
	assert_true(len > 0 && len <= VW_THUMB_MAX_BYTES);
	assert_int_equal(jpeg[0], 0xff);
	assert_int_equal(jpeg[1], 0xd8);
	assert_int_equal(jpeg[len - 2], 0xff);
	assert_int_equal(jpeg[len - 1], 0xd9);
	int w, h;
	double mean;
	decode(jpeg, len, &w, &h, &mean);
	assert_int_equal(w, 320);
	assert_int_equal(h, 180); /* 16:9 kept */
	assert_int_equal(st.width, 320);
	assert_int_equal(st.attempts, 1); /* a plain scene fits at the first quality */
	free(jpeg);
	av_frame_free(&f);
}

static void a_black_frame_stays_black(void **state)
{
	(void)state;
	AVFrame *f = frame(1280, 720, 0, 16); /* limited-range black */
	uint8_t *jpeg;
	size_t len;
	assert_int_equal(thumb_encode(f, VW_THUMB_MAX_WIDTH, VW_THUMB_MAX_BYTES, &jpeg, &len, NULL),
	                 0);
	int w, h;
	double mean;
	decode(jpeg, len, &w, &h, &mean);
	assert_true(mean < 8); /* full range after scaling: black is ~0, not 16 */
	free(jpeg);
	av_frame_free(&f);
}

static void a_noisy_frame_is_coarsened_until_it_fits(void **state)
{
	(void)state;
	AVFrame *f = frame(640, 480, 1, -1);
	uint8_t *jpeg;
	size_t len;
	struct thumb_stats st;
	assert_int_equal(thumb_encode(f, VW_THUMB_MAX_WIDTH, VW_THUMB_MAX_BYTES, &jpeg, &len, &st),
	                 0);
	assert_true(len <= VW_THUMB_MAX_BYTES);
	assert_true(st.attempts > 1); /* noise does not fit at the first quality */
	assert_true(st.qscale > 4);
	free(jpeg);
	/* A bound nothing meets: refused, nothing returned. */
	assert_int_equal(thumb_encode(f, VW_THUMB_MAX_WIDTH, 200, &jpeg, &len, &st), -E2BIG);
	assert_null(jpeg);
	av_frame_free(&f);
}

static void a_small_frame_is_not_enlarged(void **state)
{
	(void)state;
	AVFrame *f = frame(176, 144, 0, -1);
	uint8_t *jpeg;
	size_t len;
	struct thumb_stats st;
	assert_int_equal(thumb_encode(f, VW_THUMB_MAX_WIDTH, VW_THUMB_MAX_BYTES, &jpeg, &len, &st),
	                 0);
	assert_int_equal(st.width, 176);
	assert_int_equal(st.height, 144);
	free(jpeg);
	av_frame_free(&f);
	assert_int_equal(thumb_encode(NULL, 320, 1000, &jpeg, &len, NULL), -EINVAL);
}

static void due_on_change_else_by_interval(void **state)
{
	(void)state;
	struct thumb_memory m = {0};
	struct vw_result r;
	vw_result_init(&r, VW_KIND_STREAM, "cam1");
	const int64_t iv = 30 * 60000;
	assert_false(thumb_due(&m, &r, 1000, 0)); /* off */
	assert_true(thumb_due(&m, &r, 1000, iv)); /* the first result */
	thumb_remember(&m, &r, 1000, 1);
	assert_false(thumb_due(&m, &r, 2000, iv)); /* same status, interval not over */
	assert_true(thumb_due(&m, &r, 1000 + iv, iv));
	vw_result_add_fault(&r, VW_FAULT_BLACK);
	r.status = VW_STATUS_DOWN;
	assert_true(thumb_due(&m, &r, 3000, iv)); /* went black */
	thumb_remember(&m, &r, 3000, 1);
	assert_false(thumb_due(&m, &r, 4000, iv));
	/* Same status, another fault: a change of the picture. */
	struct vw_result r2;
	vw_result_init(&r2, VW_KIND_STREAM, "cam1");
	r2.status = VW_STATUS_DOWN;
	vw_result_add_fault(&r2, VW_FAULT_FROZEN);
	assert_true(thumb_due(&m, &r2, 5000, iv));
	/* A result without a picture (thumb_remember attached=0) keeps the interval running. */
	thumb_remember(&m, &r2, 5000, 0);
	assert_false(thumb_due(&m, &r2, 6000, iv));
	assert_true(thumb_due(&m, &r2, 3000 + iv, iv));
}

static void the_outbox_sends_it_once_with_its_row(void **state)
{
	(void)state;
	char dir[64], path[128], err[256];
	assert_int_equal(testdir_make(dir, sizeof(dir), "thumb"), 0);
	snprintf(path, sizeof(path), "%s/outbox.db", dir);
	struct outbox *ob;
	assert_int_equal(outbox_open(path, 1 << 20, &ob, err, sizeof(err)), 0);
	static const unsigned char jpeg[] = {0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 0xff, 0xd9};
	struct vw_result r[2];
	vw_result_init(&r[0], VW_KIND_STREAM, "cam1");
	r[0].thumb = jpeg;
	r[0].thumb_len = sizeof(jpeg);
	vw_result_init(&r[1], VW_KIND_STREAM, "cam2");
	int64_t before = outbox_bytes(ob);
	assert_int_equal(outbox_append(ob, r, 2), 0);
	struct vw_buf b;
	vw_buf_init(&b, 1 << 20);
	size_t n;
	int64_t last;
	assert_int_equal(outbox_peek(ob, 0, 10, 1 << 20, &b, &n, &last), 0);
	assert_int_equal(n, 2);
	cJSON *arr = cJSON_ParseWithLength(b.data, b.len);
	assert_non_null(arr);
	const cJSON *t0 = cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "thumbnail");
	assert_true(cJSON_IsString(t0));
	unsigned char back[32];
	int got = EVP_DecodeBlock(back, (const unsigned char *)t0->valuestring,
	                          (int)strlen(t0->valuestring));
	assert_true(got >= (int)sizeof(jpeg)); /* padding decodes as trailing zeros */
	assert_memory_equal(back, jpeg, sizeof(jpeg));
	assert_null(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 1), "thumbnail"));
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "target")->valuestring,
	                    "cam1");
	cJSON_Delete(arr);
	/* The picture counts toward the outbox's bound, and leaves with the ack. */
	assert_true(outbox_bytes(ob) - before >= (int64_t)sizeof(jpeg));
	assert_int_equal(outbox_ack(ob, last), 0);
	assert_int_equal(outbox_bytes(ob), before);
	vw_buf_free(&b);
	outbox_close(&ob);
	/* Reopened, the byte count is recomputed with the same rule. */
	assert_int_equal(outbox_open(path, 1 << 20, &ob, err, sizeof(err)), 0);
	assert_int_equal(outbox_bytes(ob), 0);
	outbox_close(&ob);
	testdir_remove(dir);
}

static void a_batch_bound_counts_the_picture(void **state)
{
	(void)state;
	char dir[64], path[128], err[256];
	assert_int_equal(testdir_make(dir, sizeof(dir), "thumb"), 0);
	snprintf(path, sizeof(path), "%s/outbox.db", dir);
	struct outbox *ob;
	assert_int_equal(outbox_open(path, 1 << 20, &ob, err, sizeof(err)), 0);
	unsigned char *big = malloc(20000);
	memset(big, 0x55, 20000);
	struct vw_result r[3];
	for (int i = 0; i < 3; i++) {
		vw_result_init(&r[i], VW_KIND_STREAM, "cam");
		r[i].thumb = big;
		r[i].thumb_len = 20000;
	}
	assert_int_equal(outbox_append(ob, r, 3), 0);
	struct vw_buf b;
	vw_buf_init(&b, 1 << 20);
	size_t n;
	int64_t last;
	/* 40 KB holds one result with its 26.7 KB of base64, not two. */
	assert_int_equal(outbox_peek(ob, 0, 10, 40000, &b, &n, &last), 0);
	assert_int_equal(n, 1);
	assert_true(b.len <= 40000);
	vw_buf_free(&b);
	free(big);
	outbox_close(&ob);
	testdir_remove(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(a_1080p_frame_fits_and_decodes),
	    cmocka_unit_test(a_black_frame_stays_black),
	    cmocka_unit_test(a_noisy_frame_is_coarsened_until_it_fits),
	    cmocka_unit_test(a_small_frame_is_not_enlarged),
	    cmocka_unit_test(due_on_change_else_by_interval),
	    cmocka_unit_test(the_outbox_sends_it_once_with_its_row),
	    cmocka_unit_test(a_batch_bound_counts_the_picture),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
