// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * The guest: 16-bit real-mode code generators. Each writes machine code into buf and returns
 * its length; vm.c puts it at guest physical address 0, where the vCPU starts.
 */
#include <stdbool.h>
#include <stddef.h>

#include "gmem-load.h"

static void put16(__u8 *p, __u16 v)
{
	p[0] = v & 0xff;
	p[1] = v >> 8;
}

/*
 * 16-bit real-mode code: one byte written at the start of each of n pages from page first on,
 * by moving DS a page (0x100 paragraphs) at a time, then hlt. first + n <= 256 keeps DS <= 0xff00.
 */
size_t guest_code(__u8 *buf, __u64 first, __u64 n)
{
	size_t i = 0, loop;

	if (n) {
		buf[i++] = 0xb9; /* mov cx, n */
		put16(buf + i, n);
		i += 2;
		buf[i++] = 0xb8; /* mov ax, first << 8 */
		put16(buf + i, first << 8);
		i += 2;
		loop = i;
		buf[i++] = 0x8e; /* mov ds, ax */
		buf[i++] = 0xd8;
		buf[i++] = 0xc6; /* mov byte [0], 0x5a */
		buf[i++] = 0x06;
		buf[i++] = 0x00;
		buf[i++] = 0x00;
		buf[i++] = 0x5a;
		buf[i++] = 0x05; /* add ax, 0x100 */
		buf[i++] = 0x00;
		buf[i++] = 0x01;
		buf[i++] = 0x49; /* dec cx */
		buf[i++] = 0x75; /* jnz loop */
		buf[i] = (__u8)(loop - (i + 1));
		i++;
	}
	buf[i++] = 0xf4; /* hlt */
	return i;
}

static size_t put_imm32(__u8 *buf, size_t i, __u8 op1, __u8 op2, __u32 v)
{
	buf[i++] = 0x66; /* operand size: 32 bits */
	buf[i++] = op1;
	if (op2)
		buf[i++] = op2;
	buf[i++] = v & 0xff;
	buf[i++] = (v >> 8) & 0xff;
	buf[i++] = (v >> 16) & 0xff;
	buf[i++] = v >> 24;
	return i;
}

/* KVM_HC_MAP_GPA_RANGE(gpa = edi, 1 page, private or shared): eax nr, ebx, ecx, edx args. */
static size_t put_map_gpa(__u8 *buf, size_t i, bool to_private)
{
	i = put_imm32(buf, i, 0xb8, 0, GMEM_KVM_HC_MAP_GPA_RANGE); /* mov eax, 12 */
	buf[i++] = 0x66; /* mov ebx, edi */
	buf[i++] = 0x89;
	buf[i++] = 0xfb;
	i = put_imm32(buf, i, 0xb9, 0, 1); /* mov ecx, 1 (pages) */
	if (to_private) {
		i = put_imm32(buf, i, 0xba, 0, GMEM_KVM_MAP_GPA_RANGE_ENCRYPTED); /* mov edx, */
	} else {
		buf[i++] = 0x66; /* xor edx, edx */
		buf[i++] = 0x31;
		buf[i++] = 0xd2;
	}
	buf[i++] = 0x0f; /* vmmcall (AMD; the lab's vCPUs are SVM) */
	buf[i++] = 0x01;
	buf[i++] = 0xd9;
	return i;
}

static size_t put_write_edi(__u8 *buf, size_t i, __u8 val)
{
	buf[i++] = 0x67; /* address size: 32 bits; DS has a 4 GiB limit (vm__vcpu_reset) */
	buf[i++] = 0xc6; /* mov byte [edi], val */
	buf[i++] = 0x07;
	buf[i++] = val;
	return i;
}

/* add edi, 4096; dec bp; jnz loop (rel16) */
static size_t put_next_page(__u8 *buf, size_t i, size_t loop)
{
	i = put_imm32(buf, i, 0x81, 0xc7, PAGE_SZ);
	buf[i++] = 0x4d;
	buf[i++] = 0x0f;
	buf[i++] = 0x85;
	put16(buf + i, (__u16)(loop - (i + 2)));
	return i + 2;
}

/*
 * The software-protected guest, 16-bit real mode with 32-bit offsets ("unreal": DS base 0,
 * limit 4 GiB): for each of nconv pages from conv_gpa, ask for it private, write it, ask for it
 * shared, write it; then write each of nmf pages from mf_gpa; then hlt.
 */
size_t guest_code_private(__u8 *buf, __u64 conv_gpa, __u64 nconv, __u64 mf_gpa,
				 __u64 nmf)
{
	size_t i = 0, loop;

	if (nconv) {
		buf[i++] = 0xbd; /* mov bp, nconv */
		put16(buf + i, nconv);
		i += 2;
		i = put_imm32(buf, i, 0xbf, 0, conv_gpa); /* mov edi, conv_gpa */
		loop = i;
		i = put_map_gpa(buf, i, true);
		i = put_write_edi(buf, i, 0x5a);
		i = put_map_gpa(buf, i, false);
		i = put_write_edi(buf, i, 0xa5);
		i = put_next_page(buf, i, loop);
	}
	if (nmf) {
		buf[i++] = 0xbd; /* mov bp, nmf */
		put16(buf + i, nmf);
		i += 2;
		i = put_imm32(buf, i, 0xbf, 0, mf_gpa); /* mov edi, mf_gpa */
		loop = i;
		i = put_write_edi(buf, i, 0x5a);
		i = put_next_page(buf, i, loop);
	}
	buf[i++] = 0xf4; /* hlt */
	return i;
}
