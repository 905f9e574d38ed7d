"""Map, explorer and translator of one guest in one output, linked to each other.

    Inspector(machine)            or Inspector(snapshot, image)

A click on the map opens the region in the explorer; a slice or step of the translator opens
its entry there too.
"""

from __future__ import annotations

from workbench.guest.machine import Machine
from workbench.kernel.image import Image
from workbench.models.snapshot import Snapshot
from workbench.views._base import Panel
from workbench.views.address_map import AddressSpaceMap
from workbench.views.pagetable import PageTableExplorer
from workbench.views.translator import Translator


class Inspector(Panel):
    """An AddressSpaceMap, a PageTableExplorer and a Translator of the same guest, linked."""

    def __init__(self, source: Snapshot | Machine, image: Image | None = None, *, vaddr: int | str = "",
                 live: bool = True) -> None:
        self.explorer = PageTableExplorer(source, image=image, live=live)
        snapshot = self.explorer.snapshot
        named = self.explorer.image or image
        self.map = AddressSpaceMap(source if isinstance(source, Machine) else snapshot, named,
                                   explorer=self.explorer)
        self.translator = Translator(self.explorer, vaddr)
        super().__init__(children=[self.map, self.explorer, self.translator])

    def __repr__(self) -> str:
        return f"<Inspector: {self.map!r}, {self.explorer!r}, {self.translator!r}>"
