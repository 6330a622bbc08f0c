// Types the fake host adds to the generated Hyper-V classes (FakeHost.Types.dll).
namespace Microsoft.HyperV.PowerShell
{
    // The Hyper-V module's exception: its errors carry an id and a category, no Win32 code.
    public class VirtualizationException : System.Exception
    {
        public VirtualizationException(string message) : base(message) { }
        public VirtualizationException(string message, System.Exception inner) : base(message, inner) { }
    }

    public class VirtualizationOperationFailedException : VirtualizationException
    {
        public VirtualizationOperationFailedException(string message) : base(message) { }
    }
}

// CimException as the CDXML modules throw it: NativeErrorCode is a CIM status; ErrorData the
// MSFT_WmiError instance (error_Code, MessageId). The one of Microsoft.Management.Infrastructure
// cannot carry these without the native MI library, so the fake host has its own class of the
// same name (the templates tell it by type name, as they must on 5.1 and 7 alike).
namespace FakeHost.Cim
{
    public class CimProperty
    {
        public string Name { get; set; }
        public object Value { get; set; }
    }

    public class CimPropertyBag
    {
        private readonly System.Collections.Generic.Dictionary<string, CimProperty> items =
            new System.Collections.Generic.Dictionary<string, CimProperty>(System.StringComparer.OrdinalIgnoreCase);

        public void Set(string name, object value)
        {
            items[name] = new CimProperty { Name = name, Value = value };
        }

        public CimProperty this[string name]
        {
            get { CimProperty p; return items.TryGetValue(name, out p) ? p : null; }
        }
    }

    public class CimErrorData
    {
        public string CimClassName { get; set; }
        public CimPropertyBag CimInstanceProperties { get; } = new CimPropertyBag();
    }

    public enum NativeErrorCode
    {
        Ok = 0, Failed = 1, AccessDenied = 2, InvalidNamespace = 3, InvalidParameter = 4,
        InvalidClass = 5, NotFound = 6, NotSupported = 7, AlreadyExists = 11
    }

    public class CimException : System.Exception
    {
        public CimException(string message, NativeErrorCode code, CimErrorData data, int hresult) : base(message)
        {
            NativeErrorCode = code;
            ErrorData = data;
            HResult = hresult;
        }

        public NativeErrorCode NativeErrorCode { get; private set; }
        public CimErrorData ErrorData { get; private set; }

        public string MessageId
        {
            get
            {
                if (ErrorData == null) return null;
                CimProperty p = ErrorData.CimInstanceProperties["MessageId"];
                return p == null ? null : (string)p.Value;
            }
        }
    }
}

// The enums the SmbShare module's CDXML files generate; its type data (Smb.types.ps1xml) shows
// the uint32 CIM properties of MSFT_SmbMapping, MSFT_SmbGlobalMapping and MSFT_SmbShare as
// these (Get-SmbMapping | Select-Object * shows "Status : OK").
namespace Microsoft.PowerShell.Cmdletization.GeneratedTypes.SmbMapping
{
    public enum Status : uint { OK = 0, Paused = 1, Disconnected = 2, NetworkError = 3, Connecting = 4, Reconnecting = 5, Unavailable = 6 }
}

namespace Microsoft.PowerShell.Cmdletization.GeneratedTypes.SmbGlobalMapping
{
    public enum Status : uint { OK = 0, Paused = 1, Disconnected = 2, NetworkError = 3, Connecting = 4, Reconnecting = 5, Unavailable = 6 }
}

namespace Microsoft.PowerShell.Cmdletization.GeneratedTypes.SmbShare
{
    public enum ShareState : uint { Pending = 0, Online = 1, Offline = 2 }
    public enum ShareType : uint { FileSystemDirectory = 0, PrintQueue = 1, CommDevice = 2, IPC = 3 }
    public enum FolderEnumerationMode : uint { AccessBased = 0, Unrestricted = 1 }
    public enum CachingMode : uint { None = 0, Manual = 1, Documents = 2, Programs = 3, BranchCache = 4, Unknown = 5 }
    public enum AvailabilityType : uint { NonClustered = 0, ScaleOut = 1, Clustered = 2 }
    public enum SmbInstance : uint { Default = 0, CSV = 1, SBL = 2, SR = 3 }
}
