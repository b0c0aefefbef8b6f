"""Drivers that talk to the estate: SSH, the Xen toolstack, storage replication.

They know nothing of Django views or models; the engine reaches them only through the
small interfaces in ``base``, so the lab and a real estate take the same code path.
"""
