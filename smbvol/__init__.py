"""smbvol: attach VHD/VHDX volumes on SMB shares (and iSCSI LUNs) to Hyper-V VMs."""

__version__ = "0.1.0"
