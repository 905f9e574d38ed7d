"""x86-64 page tables read from guest memory: walk, enumerate, coalesce, compare, print.

Pure model, no I/O: it takes a `PhysicalMemory` reader and the control registers, and returns
frozen values. Views, lessons and the address-space model call it; it calls nothing above it.

Sources: Intel SDM Vol. 3A §4.5 (4-level and 5-level paging, Tables 4-14 to 4-20 for the entry
formats, §4.6 for access rights), and QEMU 7.2's target/i386/monitor.c (`print_pte`,
`tlb_info_la48`, `tlb_info_la57`, `mem_print`, `mem_info_la48`, `mem_info_la57`), which
`format_info_tlb` and `format_info_mem` reproduce byte for byte.

The package, one module per part, each readable on its own:
    entries      entry bits and fields, levels, the paging mode (reserved bits), permissions
    inputs       the memory and register protocols the model reads
    translation  how one vaddr is walked: `walk`, `translate`, `format_walk`
    tables       reading tables as numpy arrays, a level at a time, where QEMU finds them
    enumeration  every leaf, vectorised: `leaves`, `Leaves`
    ranges       leaves coalesced into ranges (`mappings`)
    qemu_text    QEMU's `info tlb` and `info mem`, printed and parsed byte for byte
    comparison   the diff of two snapshots
    tree         the tables as a tree, for the page-table view
    errors       the errors, under `WorkbenchError`

Everything public is importable from `workbench.models.paging` itself. The modules use each
other only through public names: `TableReader`, `QEMU_TABLE_MASK`, `Words` and `WORD` of
`tables`, `collector_paused` of `enumeration`, `LendingMemory` of `inputs` are the package's
internal interface, not exported here.
"""

from workbench.models.paging.comparison import LeafChange, LeafDiff, diff
from workbench.models.paging.entries import (
    DEFAULT_MAX_ENTRIES,
    ENTRY_ACCESSED,
    ENTRY_ADDRESS_BITS,
    ENTRY_CACHE_DISABLE,
    ENTRY_DIRTY,
    ENTRY_GLOBAL,
    ENTRY_IGNORED_HIGH,
    ENTRY_IGNORED_LOW,
    ENTRY_NO_EXECUTE,
    ENTRY_PAGE_SIZE,
    ENTRY_PAT_4K,
    ENTRY_PAT_LARGE,
    ENTRY_PRESENT,
    ENTRY_PROTECTION_KEY,
    ENTRY_USER,
    ENTRY_WRITABLE,
    ENTRY_WRITE_THROUGH,
    PAGE_SIZE_1G,
    PAGE_SIZE_2M,
    PAGE_SIZE_4K,
    RIGHTS_NO_EXECUTE,
    RIGHTS_USER,
    RIGHTS_WRITABLE,
    Entry,
    EntryField,
    Level,
    PagingKind,
    PagingMode,
    Permissions,
    effective_permissions,
    size_text,
)
from workbench.models.paging.enumeration import Leaf, LeafRow, Leaves, TableProblem, leaves, vaddrs_for_frame
from workbench.models.paging.errors import (
    InvalidVaddr,
    MonitorOutputError,
    PagingError,
    PhysicalMemoryError,
    TableInDeviceMemory,
    UnsupportedPagingModeError,
    WalkLimitError,
)
from workbench.models.paging.inputs import (
    BytesMemory,
    ControlRegisters,
    PagingRegisters,
    PhysicalMemory,
    physical_map_of,
)
from workbench.models.paging.qemu_text import (
    TlbLine,
    format_info_mem,
    format_info_tlb,
    info_tlb_text,
    parse_info_mem,
    parse_info_tlb,
    tlb_lines,
)
from workbench.models.paging.ranges import MappedRange, MappedRanges, format_mappings, mappings
from workbench.models.paging.tables import read_tables
from workbench.models.paging.translation import (
    EntryKind,
    FaultKind,
    PageFault,
    PageFaultError,
    Walk,
    WalkStep,
    format_walk,
    translate,
    walk,
)
from workbench.models.paging.tree import PageTableTree, TableNode, TreeEntry, format_tree

__all__ = [
    "DEFAULT_MAX_ENTRIES",
    "ENTRY_ACCESSED",
    "ENTRY_ADDRESS_BITS",
    "ENTRY_CACHE_DISABLE",
    "ENTRY_DIRTY",
    "ENTRY_GLOBAL",
    "ENTRY_IGNORED_HIGH",
    "ENTRY_IGNORED_LOW",
    "ENTRY_NO_EXECUTE",
    "ENTRY_PAGE_SIZE",
    "ENTRY_PAT_4K",
    "ENTRY_PAT_LARGE",
    "ENTRY_PRESENT",
    "ENTRY_PROTECTION_KEY",
    "ENTRY_USER",
    "ENTRY_WRITABLE",
    "ENTRY_WRITE_THROUGH",
    "PAGE_SIZE_1G",
    "PAGE_SIZE_2M",
    "PAGE_SIZE_4K",
    "RIGHTS_NO_EXECUTE",
    "RIGHTS_USER",
    "RIGHTS_WRITABLE",
    "BytesMemory",
    "ControlRegisters",
    "Entry",
    "EntryField",
    "EntryKind",
    "FaultKind",
    "InvalidVaddr",
    "Leaf",
    "LeafChange",
    "LeafDiff",
    "LeafRow",
    "Leaves",
    "Level",
    "MappedRange",
    "MappedRanges",
    "MonitorOutputError",
    "PageFault",
    "PageFaultError",
    "PageTableTree",
    "PagingError",
    "PagingKind",
    "PagingMode",
    "PagingRegisters",
    "Permissions",
    "PhysicalMemory",
    "PhysicalMemoryError",
    "TableInDeviceMemory",
    "TableNode",
    "TableProblem",
    "TlbLine",
    "TreeEntry",
    "UnsupportedPagingModeError",
    "Walk",
    "WalkLimitError",
    "WalkStep",
    "diff",
    "effective_permissions",
    "format_info_mem",
    "format_info_tlb",
    "format_mappings",
    "format_tree",
    "format_walk",
    "info_tlb_text",
    "leaves",
    "mappings",
    "parse_info_mem",
    "parse_info_tlb",
    "physical_map_of",
    "read_tables",
    "size_text",
    "tlb_lines",
    "translate",
    "vaddrs_for_frame",
    "walk",
]
