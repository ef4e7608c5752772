"""Argument types the ``rx`` commands share."""

from __future__ import annotations

import click

from rxchain.core.ids import RxId


class RxIdParam(click.ParamType):
    """A prescription id on the command line, read once into :class:`~rxchain.core.ids.RxId`.

    The command gets the 32 bytes, and everything it prints (text, ``--json``, file names) shows the id
    in the one form ``0x`` + 64 lower-case hex digits, whatever case or prefix the user typed. A value
    that is not an id is :class:`~rxchain.errors.InvalidValue` (exit 4), naming what is wrong."""

    name = "rx_id"

    def convert(self, value, param, ctx) -> RxId:
        return RxId(value)


#: The prescription id argument of every command that takes one.
RX_ID = RxIdParam()
