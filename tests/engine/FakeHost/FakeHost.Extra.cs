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

// Windows security objects for what Windows PowerShell and PowerShell on Windows build with
// System.Security.Principal and System.Security.AccessControl, whose constructors throw
// PlatformNotSupportedException on Linux. Same member names and argument types as .NET's
// (SecurityIdentifier, NTAccount, DirectorySecurity, FileSecurity, FileSystemAccessRule, the
// FileSystemRights/InheritanceFlags/PropagationFlags/AccessControlType enums); the fake host's
// New-Object hands these out for those type names, its Get-Acl and Set-Acl read and write them.
namespace FakeHost.Security
{
    [System.Flags]
    public enum FileSystemRights
    {
        ReadData = 1, ListDirectory = 1, WriteData = 2, CreateFiles = 2, AppendData = 4,
        CreateDirectories = 4, ReadExtendedAttributes = 8, WriteExtendedAttributes = 16,
        ExecuteFile = 32, Traverse = 32, DeleteSubdirectoriesAndFiles = 64, ReadAttributes = 128,
        WriteAttributes = 256, Write = 278, Delete = 65536, ReadPermissions = 131072, Read = 131209,
        ReadAndExecute = 131241, Modify = 197055, ChangePermissions = 262144, TakeOwnership = 524288,
        Synchronize = 1048576, FullControl = 2032127
    }

    [System.Flags]
    public enum InheritanceFlags { None = 0, ContainerInherit = 1, ObjectInherit = 2 }

    [System.Flags]
    public enum PropagationFlags { None = 0, NoPropagateInherit = 1, InheritOnly = 2 }

    public enum AccessControlType { Allow = 0, Deny = 1 }

    // IdentityReference.Translate's error for a SID no account is known by.
    public class IdentityNotMappedException : System.SystemException
    {
        public IdentityNotMappedException() : base("Some or all identity references could not be translated.") { }
    }

    public abstract class IdentityReference
    {
        public abstract string Value { get; }
        public abstract IdentityReference Translate(System.Type targetType);
        public override string ToString() { return Value; }
        public override bool Equals(object other)
        {
            IdentityReference o = other as IdentityReference;
            return o != null && o.GetType() == GetType() && string.Equals(o.Value, Value, System.StringComparison.OrdinalIgnoreCase);
        }
        public override int GetHashCode() { return Value.ToUpperInvariant().GetHashCode(); }

        // The well-known accounts of every Windows host (and the local users a state names).
        internal static readonly System.Collections.Generic.Dictionary<string, string> Names =
            new System.Collections.Generic.Dictionary<string, string>(System.StringComparer.OrdinalIgnoreCase)
            {
                { "S-1-5-18", "NT AUTHORITY\\SYSTEM" },
                { "S-1-5-19", "NT AUTHORITY\\LOCAL SERVICE" },
                { "S-1-5-20", "NT AUTHORITY\\NETWORK SERVICE" },
                { "S-1-5-32-544", "BUILTIN\\Administrators" },
                { "S-1-5-32-545", "BUILTIN\\Users" },
                { "S-1-1-0", "Everyone" },
            };

        public static void AddAccount(string sid, string name) { Names[sid] = name; }
    }

    public sealed class SecurityIdentifier : IdentityReference
    {
        private readonly string value;

        public SecurityIdentifier(string sddlForm)
        {
            if (sddlForm == null)
            {
                throw new System.ArgumentNullException("sddlForm");
            }
            if (!System.Text.RegularExpressions.Regex.IsMatch(sddlForm, "^[Ss]-1(-[0-9]+)+$"))
            {
                throw new System.ArgumentException("Value was invalid.", "sddlForm");
            }
            value = sddlForm.ToUpperInvariant();
        }

        public override string Value { get { return value; } }

        public override IdentityReference Translate(System.Type targetType)
        {
            if (targetType == null)
            {
                throw new System.ArgumentNullException("targetType");
            }
            if (targetType.Name == "SecurityIdentifier")
            {
                return this;
            }
            if (targetType.Name == "NTAccount")
            {
                string name;
                if (!Names.TryGetValue(value, out name))
                {
                    throw new IdentityNotMappedException();
                }
                return new NTAccount(name);
            }
            throw new System.ArgumentException("Only IdentityReference types can be translated.", "targetType");
        }
    }

    public sealed class NTAccount : IdentityReference
    {
        private readonly string value;

        public NTAccount(string name) { value = name; }

        public override string Value { get { return value; } }

        public override IdentityReference Translate(System.Type targetType)
        {
            if (targetType != null && targetType.Name == "NTAccount")
            {
                return this;
            }
            foreach (System.Collections.Generic.KeyValuePair<string, string> pair in Names)
            {
                if (string.Equals(pair.Value, value, System.StringComparison.OrdinalIgnoreCase))
                {
                    return new SecurityIdentifier(pair.Key);
                }
            }
            throw new IdentityNotMappedException();
        }
    }

    public sealed class FileSystemAccessRule
    {
        public FileSystemAccessRule(IdentityReference identity, FileSystemRights fileSystemRights, AccessControlType type)
            : this(identity, fileSystemRights, InheritanceFlags.None, PropagationFlags.None, type) { }

        public FileSystemAccessRule(IdentityReference identity, FileSystemRights fileSystemRights, InheritanceFlags inheritanceFlags, PropagationFlags propagationFlags, AccessControlType type)
        {
            if (identity == null)
            {
                throw new System.ArgumentNullException("identity");
            }
            IdentityReference = identity;
            FileSystemRights = fileSystemRights;
            InheritanceFlags = inheritanceFlags;
            PropagationFlags = propagationFlags;
            AccessControlType = type;
        }

        public IdentityReference IdentityReference { get; private set; }
        public FileSystemRights FileSystemRights { get; private set; }
        public InheritanceFlags InheritanceFlags { get; private set; }
        public PropagationFlags PropagationFlags { get; private set; }
        public AccessControlType AccessControlType { get; private set; }
        public bool IsInherited { get { return false; } }
    }

    // FileSystemSecurity: an owner, a DACL and whether the DACL is protected from inheritance.
    public abstract class FileSystemSecurity
    {
        private readonly System.Collections.Generic.List<FileSystemAccessRule> rules =
            new System.Collections.Generic.List<FileSystemAccessRule>();

        protected FileSystemSecurity(bool isContainer) { IsContainer = isContainer; }

        public bool IsContainer { get; private set; }
        public SecurityIdentifier OwnerSid { get; private set; }
        public bool AreAccessRulesProtected { get; private set; }
        public System.Collections.Generic.IList<FileSystemAccessRule> Rules { get { return rules; } }

        public void SetOwner(IdentityReference identity)
        {
            if (identity == null)
            {
                throw new System.ArgumentNullException("identity");
            }
            OwnerSid = (SecurityIdentifier)identity.Translate(typeof(SecurityIdentifier));
        }

        public IdentityReference GetOwner(System.Type targetType)
        {
            return OwnerSid == null ? null : OwnerSid.Translate(targetType);
        }

        public void SetAccessRuleProtection(bool isProtected, bool preserveInheritance)
        {
            AreAccessRulesProtected = isProtected;
        }

        public void AddAccessRule(FileSystemAccessRule rule)
        {
            if (rule == null)
            {
                throw new System.ArgumentNullException("rule");
            }
            if (!IsContainer && (rule.InheritanceFlags != InheritanceFlags.None || rule.PropagationFlags != PropagationFlags.None))
            {
                // CommonAcl refuses inheritance on an object that is no container.
                throw new System.ArgumentException("Inheritance and propagation flags are not valid for this object type.", "rule");
            }
            rules.Add(rule);
        }

        // Set by the fake host's Get-Acl: what the file system holds.
        public void Load(string owner, bool isProtected)
        {
            OwnerSid = string.IsNullOrEmpty(owner) ? null : new SecurityIdentifier(owner);
            AreAccessRulesProtected = isProtected;
        }
    }

    public sealed class DirectorySecurity : FileSystemSecurity
    {
        public DirectorySecurity() : base(true) { }
    }

    public sealed class FileSecurity : FileSystemSecurity
    {
        public FileSecurity() : base(false) { }
    }
}

// The Task Scheduler 2.0 scripting objects (Schedule.Service) as COM hands them to PowerShell:
// the same members, argument counts and constants (TASK_CREATE_OR_UPDATE = 6,
// TASK_LOGON_SERVICE_ACCOUNT = 5, TASK_ACTION_EXEC = 0, TASK_STATE_READY = 3, RUNNING = 4),
// errors as COMExceptions with the HRESULTs the service returns. The fake host's hooks
// (scriptblocks) keep the registered tasks in its state and run a task's action.
namespace FakeHost.TaskScheduler
{
    public sealed class TaskHooks
    {
        public System.Management.Automation.ScriptBlock Register { get; set; }
        public System.Management.Automation.ScriptBlock Run { get; set; }
        public System.Management.Automation.ScriptBlock Delete { get; set; }
    }

    internal static class Errors
    {
        public static System.Runtime.InteropServices.COMException Com(string message, uint hresult)
        {
            return new System.Runtime.InteropServices.COMException(message + " (0x" + hresult.ToString("X8") + ")", unchecked((int)hresult));
        }
    }

    public sealed class RegistrationInfo
    {
        public string Description { get; set; }
        public string Author { get; set; }
    }

    public sealed class TaskSettings
    {
        public bool Enabled { get; set; } = true;
        public bool Hidden { get; set; }
        public bool AllowDemandStart { get; set; } = true;
        public bool DisallowStartIfOnBatteries { get; set; } = true;
        public bool StopIfGoingOnBatteries { get; set; } = true;
        public string ExecutionTimeLimit { get; set; } = "PT72H";
    }

    public sealed class Principal
    {
        // TASK_RUNLEVEL_LUA = 0, TASK_RUNLEVEL_HIGHEST = 1
        private int runLevel;
        public int RunLevel
        {
            get { return runLevel; }
            set
            {
                if (value != 0 && value != 1)
                {
                    throw new System.ArgumentException("The parameter is incorrect. (0x80070057)");
                }
                runLevel = value;
            }
        }
        public string UserId { get; set; }
        public int LogonType { get; set; }
    }

    public sealed class ExecAction
    {
        public int Type { get { return 0; } }
        public string Path { get; set; }
        public string Arguments { get; set; }
        public string WorkingDirectory { get; set; }
    }

    public sealed class ActionCollection : System.Collections.Generic.List<ExecAction>
    {
        public ExecAction Create(int type)
        {
            if (type != 0)
            {
                // Only TASK_ACTION_EXEC is modelled (the others are deprecated or COM handlers).
                throw new System.NotSupportedException("the fake Task Scheduler models only TASK_ACTION_EXEC (0)");
            }
            ExecAction action = new ExecAction();
            Add(action);
            return action;
        }
    }

    public sealed class TaskDefinition
    {
        public RegistrationInfo RegistrationInfo { get; } = new RegistrationInfo();
        public TaskSettings Settings { get; } = new TaskSettings();
        public Principal Principal { get; } = new Principal();
        public ActionCollection Actions { get; } = new ActionCollection();
    }

    public sealed class RegisteredTask
    {
        private readonly TaskHooks hooks;

        public RegisteredTask(string name, TaskDefinition definition, string userId, int logonType, TaskHooks hooks)
        {
            Name = name;
            Definition = definition;
            UserId = userId;
            LogonType = logonType;
            this.hooks = hooks;
            State = 3;
            LastTaskResult = 267011; // SCHED_S_TASK_HAS_NOT_RUN
        }

        public string Name { get; private set; }
        public string Path { get { return "\\" + Name; } }
        public TaskDefinition Definition { get; private set; }
        public string UserId { get; private set; }
        public int LogonType { get; private set; }
        public int State { get; private set; }
        public int LastTaskResult { get; private set; }
        public bool Deleted { get; set; }

        // Runs the task now. The fake runs its action to the end before returning (a real task
        // starts and returns at once; the caller waits for what the action writes either way).
        public object Run(object parameters)
        {
            if (Deleted)
            {
                throw Errors.Com("The system cannot find the file specified.", 0x80070002);
            }
            if (!Definition.Settings.Enabled)
            {
                throw Errors.Com("The task is disabled.", 0x80041326);
            }
            State = 4;
            try
            {
                System.Collections.ObjectModel.Collection<System.Management.Automation.PSObject> answer = hooks.Run.Invoke(this);
                LastTaskResult = answer.Count == 0 ? 0 : System.Convert.ToInt32(answer[answer.Count - 1].BaseObject);
            }
            finally
            {
                State = 3;
            }
            return null;
        }

        public void Stop(int flags)
        {
            State = 3;
        }
    }

    public sealed class TaskFolder
    {
        private readonly TaskHooks hooks;
        private readonly System.Collections.Generic.Dictionary<string, RegisteredTask> tasks =
            new System.Collections.Generic.Dictionary<string, RegisteredTask>(System.StringComparer.OrdinalIgnoreCase);

        public TaskFolder(string path, TaskHooks hooks)
        {
            Path = path;
            this.hooks = hooks;
        }

        public string Path { get; private set; }

        public RegisteredTask RegisterTaskDefinition(string path, TaskDefinition definition, int flags, object userId, object password, int logonType)
        {
            return RegisterTaskDefinition(path, definition, flags, userId, password, logonType, null);
        }

        public RegisteredTask RegisterTaskDefinition(string path, TaskDefinition definition, int flags, object userId, object password, int logonType, object sddl)
        {
            if (string.IsNullOrEmpty(path) || path.IndexOf('\\') >= 0 || definition == null)
            {
                throw Errors.Com("The parameter is incorrect.", 0x80070057);
            }
            if ((flags & 6) == 0)
            {
                // TASK_CREATE (2) and/or TASK_UPDATE (4): this model knows no other.
                throw Errors.Com("The parameter is incorrect.", 0x80070057);
            }
            if (definition.Actions.Count == 0 || string.IsNullOrEmpty(definition.Actions[0].Path))
            {
                throw Errors.Com("The task XML is missing a required element or attribute.", 0x80041319);
            }
            string user = userId == null ? null : System.Convert.ToString(userId);
            if (logonType == 5)
            {
                // TASK_LOGON_SERVICE_ACCOUNT: SYSTEM, LOCAL SERVICE or NETWORK SERVICE, no password.
                string u = (user ?? string.Empty).ToUpperInvariant();
                if (u != "SYSTEM" && u != "NT AUTHORITY\\SYSTEM" && u != "S-1-5-18" && u != "LOCAL SERVICE" && u != "NETWORK SERVICE")
                {
                    throw Errors.Com("The user name or password is incorrect.", 0x8007052E);
                }
            }
            else
            {
                throw new System.NotSupportedException("the fake Task Scheduler models only TASK_LOGON_SERVICE_ACCOUNT (5)");
            }
            RegisteredTask existing;
            if (tasks.TryGetValue(path, out existing) && (flags & 4) == 0)
            {
                throw Errors.Com("Cannot create a file when that file already exists.", 0x800700B7);
            }
            RegisteredTask task = new RegisteredTask(path, definition, user, logonType, hooks);
            tasks[path] = task;
            hooks.Register.Invoke(task);
            return task;
        }

        public void DeleteTask(string name, int flags)
        {
            RegisteredTask task;
            if (!tasks.TryGetValue(name ?? string.Empty, out task))
            {
                throw Errors.Com("The system cannot find the file specified.", 0x80070002);
            }
            tasks.Remove(name);
            task.Deleted = true;
            hooks.Delete.Invoke(name);
        }
    }

    public sealed class TaskService
    {
        private readonly TaskHooks hooks;
        private TaskFolder root;

        public TaskService(TaskHooks hooks) { this.hooks = hooks; }

        public bool Connected { get; private set; }

        public void Connect() { Connected = true; }

        public void Connect(object serverName, object user, object domain, object password)
        {
            Connected = true;
        }

        public TaskFolder GetFolder(string path)
        {
            if (!Connected)
            {
                throw Errors.Com("The Task Scheduler service is not connected.", 0x80041328);
            }
            if (path != "\\")
            {
                throw Errors.Com("The system cannot find the file specified.", 0x80070002);
            }
            if (root == null)
            {
                root = new TaskFolder(path, hooks);
            }
            return root;
        }

        public TaskDefinition NewTask(int flags)
        {
            if (!Connected)
            {
                throw Errors.Com("The Task Scheduler service is not connected.", 0x80041328);
            }
            if (flags != 0)
            {
                throw Errors.Com("The parameter is incorrect.", 0x80070057);
            }
            return new TaskDefinition();
        }
    }
}
