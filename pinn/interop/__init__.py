"""Bridges between pinn and other applications.

Each subpackage wraps one application and needs it installed (an optional extra); ``import
pinn`` never imports them. :mod:`pinn.interop.ptychodus` makes pinn a trainable reconstructor
of the APS ptychography application Ptychodus (``pip install "pinn[ptychodus]"``).
"""
