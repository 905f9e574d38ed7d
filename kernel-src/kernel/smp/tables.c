/* Which CPUs there are, from the firmware's tables: ACPI's MADT when the machine has ACPI (on
 * microvm by default, and the workbench leaves it on: hvm_start_info.rsdp_paddr leads there),
 * else the MP table qboot writes with acpi=off (at 0x9fc00, the last KiB of base memory).
 * smp_init (cpus.c) calls smp_find_cpus() once, and smp_is_ram() for its start-up page. */

#include "smp.h"
#include "x86.h"

/* As in kernel/main.c: struct hvm_start_info, from Xen's public/arch-x86/hvm/start_info.h. */
struct hvm_start_info {
    uint32_t magic, version, flags, module_count;
    uint64_t module_list_paddr, command_line_paddr, rsdp_paddr, memory_map_paddr;
    uint32_t memory_map_entries, reserved;
};

struct hvm_memory_map_entry {
    uint64_t paddr, size;
    uint32_t type, reserved;
};

#define HVM_MEMORY_RAM  1

/* Firmware tables sum to 0 over their length, bytes taken modulo 256. */
static bool checksum_ok(const void *start, size_t length)
{
    uint8_t sum = 0;
    for (size_t i = 0; i < length; i++)
        sum += ((const uint8_t *)start)[i];
    return sum == 0;
}

bool smp_is_ram(uint32_t start_info_paddr, uint64_t paddr, uint64_t size)
{
    const struct hvm_start_info *info = PHYSICAL_TO_VIRTUAL(start_info_paddr);
    const struct hvm_memory_map_entry *entry = PHYSICAL_TO_VIRTUAL(info->memory_map_paddr);
    for (uint32_t i = 0; i < info->memory_map_entries; i++, entry++)
        if (entry->type == HVM_MEMORY_RAM && entry->paddr <= paddr &&
            paddr + size <= entry->paddr + entry->size)
            return true;
    return false;
}

/* ACPI 6.5: 5.2.5 the RSDP, 5.2.6 every table's header, 5.2.12 the MADT ("APIC"). */
struct acpi_rsdp {
    char signature[8];              /* "RSD PTR " */
    uint8_t checksum;               /* over the first 20 bytes */
    char oem_id[6];
    uint8_t revision;               /* 2 and up: the XSDT's 64-bit address is there */
    uint32_t rsdt_paddr;
    uint32_t length;
    uint64_t xsdt_paddr;
} __attribute__((packed));

#define ACPI_RSDP_V1_LENGTH  20

struct acpi_header {
    char signature[4];
    uint32_t length;                /* of the whole table, header included */
    uint8_t revision, checksum;
    char oem_id[6], oem_table_id[8];
    uint32_t oem_revision, creator_id, creator_revision;
} __attribute__((packed));

struct acpi_madt_entry {            /* MADT "Processor Local APIC Structure", type 0 */
    uint8_t type, length;
    uint8_t processor_uid, apic_id;
    uint32_t flags;
} __attribute__((packed));

#define MADT_ENTRIES          44    /* after the header, the local APIC address and flags */
#define MADT_LOCAL_APIC       0
#define MADT_ENABLED          (1 << 0)  /* present now (not merely "online capable") */

/* The table called signature, listed by the RSDT (4-byte addresses) or XSDT (8-byte). */
static const struct acpi_header *acpi_find(uint64_t rsdp_paddr, const char *signature)
{
    const struct acpi_rsdp *rsdp = PHYSICAL_TO_VIRTUAL(rsdp_paddr);
    if (rsdp_paddr == 0 || memcmp(rsdp->signature, "RSD PTR ", 8) != 0 ||
        !checksum_ok(rsdp, ACPI_RSDP_V1_LENGTH))
        return NULL;
    bool extended = rsdp->revision >= 2 && rsdp->xsdt_paddr != 0;
    uint64_t root_paddr = extended ? rsdp->xsdt_paddr : rsdp->rsdt_paddr;
    const struct acpi_header *root = PHYSICAL_TO_VIRTUAL(root_paddr);
    size_t entry_size = extended ? 8 : 4;
    if (!checksum_ok(root, root->length))
        return NULL;
    for (size_t at = sizeof(*root); at + entry_size <= root->length; at += entry_size) {
        uint64_t paddr = 0;
        memcpy(&paddr, (const uint8_t *)root + at, entry_size);
        const struct acpi_header *table = PHYSICAL_TO_VIRTUAL(paddr);
        if (memcmp(table->signature, signature, 4) == 0 && checksum_ok(table, table->length))
            return table;
    }
    return NULL;
}

/* Intel MultiProcessor Specification 1.4, chapter 4: a floating pointer on a 16-byte boundary
 * in the last KiB of base memory or in the BIOS ROM leads to the configuration table. */
struct mp_floating_pointer {
    char signature[4];              /* "_MP_" */
    uint32_t config_paddr;
    uint8_t length;                 /* in 16-byte units */
    uint8_t revision, checksum;
    uint8_t features[5];
} __attribute__((packed));

struct mp_config {
    char signature[4];              /* "PCMP" */
    uint16_t length;                /* header and entries */
    uint8_t revision, checksum;
    char oem_id[8], product_id[12];
    uint32_t oem_table_paddr;
    uint16_t oem_table_size, entry_count;   /* qboot leaves the count 0: walk by length */
    uint32_t local_apic_paddr;
    uint16_t extended_length;
    uint8_t extended_checksum, reserved;
} __attribute__((packed));

struct mp_processor {               /* entry type 0; every other type is 8 bytes long */
    uint8_t type, apic_id, apic_version, flags;
    uint32_t signature, features, reserved[2];
} __attribute__((packed));

#define MP_PROCESSOR          0
#define MP_OTHER_ENTRY_SIZE   8
#define MP_PROCESSOR_ENABLED  (1 << 0)

static const uint64_t mp_search[][2] = {
    {0x9fc00, 0xa0000},             /* the last KiB of 640 KiB of base memory */
    {0xf0000, 0x100000},            /* the BIOS ROM */
};

static const struct mp_config *mp_find(void)
{
    for (size_t r = 0; r < sizeof(mp_search) / sizeof(mp_search[0]); r++) {
        for (uint64_t paddr = mp_search[r][0]; paddr < mp_search[r][1]; paddr += 16) {
            const struct mp_floating_pointer *pointer = PHYSICAL_TO_VIRTUAL(paddr);
            if (memcmp(pointer->signature, "_MP_", 4) != 0 ||
                !checksum_ok(pointer, pointer->length * 16) || pointer->config_paddr == 0)
                continue;
            const struct mp_config *config = PHYSICAL_TO_VIRTUAL(pointer->config_paddr);
            if (memcmp(config->signature, "PCMP", 4) == 0 && checksum_ok(config, config->length))
                return config;
        }
    }
    return NULL;
}

/* CPU 0 is the one that booted, wherever the table lists it; the others follow in its order. */
static void add_cpu(unsigned *count, uint32_t apic_id, uint32_t boot_apic_id)
{
    if (apic_id == boot_apic_id)
        return;
    if (*count == MAX_CPUS) {
        console_printf("kernel: cpu with APIC id %u left out: MAX_CPUS is %u\n", apic_id, MAX_CPUS);
        return;
    }
    cpus[*count].index = *count;
    cpus[*count].apic_id = apic_id;
    (*count)++;
}

unsigned smp_find_cpus(uint32_t start_info_paddr, uint32_t boot_apic_id, const char **table)
{
    const struct hvm_start_info *info = PHYSICAL_TO_VIRTUAL(start_info_paddr);
    unsigned count = 1;
    cpus[0].apic_id = boot_apic_id;

    const struct acpi_header *madt = acpi_find(info->rsdp_paddr, "APIC");
    if (madt != NULL) {
        *table = "the ACPI MADT";
        const uint8_t *at = (const uint8_t *)madt + MADT_ENTRIES;
        const uint8_t *end = (const uint8_t *)madt + madt->length;
        for (const struct acpi_madt_entry *entry; at + 2 <= end; at += entry->length) {
            entry = (const struct acpi_madt_entry *)at;
            if (entry->length < 2)
                break;                  /* a broken table: stop rather than loop */
            if (entry->type == MADT_LOCAL_APIC && (entry->flags & MADT_ENABLED))
                add_cpu(&count, entry->apic_id, boot_apic_id);
        }
        return count;
    }
    const struct mp_config *config = mp_find();
    if (config != NULL) {
        *table = "the MP table";
        const uint8_t *end = (const uint8_t *)config + config->length;
        for (const uint8_t *at = (const uint8_t *)(config + 1); at < end;) {
            const struct mp_processor *processor = (const struct mp_processor *)at;
            if (processor->type != MP_PROCESSOR) {
                at += MP_OTHER_ENTRY_SIZE;
                continue;
            }
            if (processor->flags & MP_PROCESSOR_ENABLED)
                add_cpu(&count, processor->apic_id, boot_apic_id);
            at += sizeof(*processor);
        }
        return count;
    }
    *table = "no table";
    return 0;
}
