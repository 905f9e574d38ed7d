/* The few C library functions the kernel and the application need. The compiler may also
 * emit calls to memset, memcpy and memcmp on its own, even with -ffreestanding. memset and
 * memcpy use the string instructions: a plain C loop could be recognised by the optimiser
 * and turned back into a call to memset itself. */

#include "kernel.h"

void *memset(void *destination, int byte, size_t length)
{
    void *d = destination;
    __asm__ volatile("rep stosb" : "+D"(d), "+c"(length) : "a"(byte) : "memory");
    return destination;
}

void *memcpy(void *destination, const void *source, size_t length)
{
    void *d = destination;
    __asm__ volatile("rep movsb" : "+D"(d), "+S"(source), "+c"(length) : : "memory");
    return destination;
}

int memcmp(const void *left, const void *right, size_t length)
{
    const unsigned char *l = left, *r = right;
    for (; length > 0; length--, l++, r++)
        if (*l != *r)
            return *l - *r;
    return 0;
}

size_t strlen(const char *text)
{
    size_t length = 0;
    while (text[length] != '\0')
        length++;
    return length;
}

int strcmp(const char *left, const char *right)
{
    while (*left != '\0' && *left == *right)
        left++, right++;
    return (unsigned char)*left - (unsigned char)*right;
}
