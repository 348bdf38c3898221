"""``hideseek augment``: the augmentation registry."""

from __future__ import annotations


def _list(args) -> int:
    from hideseek import augment

    for name in augment.available():
        print(name)
    return 0


def add_parser(rooms) -> None:
    room = rooms.add_parser("augment", help="Hide-and-Seek and comparison augmentations",
                            description="Augmentations behind one name registry.")
    verbs = room.add_subparsers(dest="verb", metavar="VERB", required=True)
    listing = verbs.add_parser("list", help="list the registered augmentation names")
    listing.set_defaults(handler=_list)
