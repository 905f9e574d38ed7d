# Turns `readelf -sW` output into the bytes of the kernel's own symbol table for the fault
# report (kernel/fault.c): the Makefile writes them into the space kernel/symbols.S reserves.
# They fill that space exactly, so no address in the image moves; a table too large for it
# stops the build. Run it with LC_ALL=C, so that printf "%c" writes single bytes.
# Layout, little-endian: the count (8 bytes); for each function, sorted by address, its address
# (8), size (4) and where its name starts, counted from the table's start (4); the names, each
# ending in a NUL; zeros up to the end of the space.

BEGIN { count = 0; HEX = "0123456789abcdef" }

$8 == "kernel_symbols" { space = $3 }
$4 == "FUNC" && $3 != 0 {  # an insertion sort by address (16 hex digits), then name
    key = $2 " " $8
    for (i = count++; i > 0 && sorted[i - 1] > key; i--)
        sorted[i] = sorted[i - 1]
    sorted[i] = key
    size[key] = $3
}

function number(value, width) {  # `width` bytes, least significant first
    for (; width > 0; width--) {
        printf "%c", value % 256
        value = int(value / 256)
    }
}

function hex64(digits,    i) {  # 16 hex digits as 8 bytes, least significant first
    for (i = 15; i > 0; i -= 2)
        printf "%c", (index(HEX, substr(digits, i, 1)) - 1) * 16 + index(HEX, substr(digits, i + 1, 1)) - 1
}

END {
    used = 8 + 16 * count
    for (i = 0; i < count; i++) {
        split(sorted[i], field, " ")
        address[i] = field[1]
        name[i] = field[2]
        used += length(name[i]) + 1
    }
    if (used > space) {
        printf "symbols.awk: the symbol table needs %d bytes; kernel/symbols.S reserves %d " \
               "(SYMBOL_TABLE_SIZE)\n", used, space > "/dev/stderr"
        exit 1
    }
    number(count, 8)
    offset = 8 + 16 * count
    for (i = 0; i < count; i++) {
        hex64(address[i])
        number(size[sorted[i]], 4)
        number(offset, 4)
        offset += length(name[i]) + 1
    }
    for (i = 0; i < count; i++)
        printf "%s%c", name[i], 0
    for (; used < space; used++)
        printf "%c", 0
}
