"""smbvol: attach VHD/VHDX volumes on SMB shares (and iSCSI LUNs) to Hyper-V VMs."""

__version__ = "0.1.0"

__all__ = ["VolumeOps"]


def __getattr__(name):
    # VolumeOps is imported on first use, so ``import smbvol`` stays light.
    if name == "VolumeOps":
        from smbvol.volumeops import VolumeOps
        return VolumeOps
    raise AttributeError("module 'smbvol' has no attribute %r" % name)
