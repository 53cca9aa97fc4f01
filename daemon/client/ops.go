package client

import (
	"context"
	"net/url"
	"strings"

	"github.com/virtplane/virtplane"
)

// Op is one operation of the daemon's API as the client calls it: the
// OpenAPI operation ID, its HTTP method and path template, and the Client
// method that calls it. TestClientCoversOpenAPI holds the table to the
// daemon's OpenAPI document (an operation without a row, or a row whose
// method does not call its operation, fails it); a new operation needs a
// row here and a method that calls c.call with its ID.
type Op struct {
	ID, Method, Path, Func string
}

// Operations returns the operations the client calls, one row each.
func Operations() []Op {
	return []Op{
		// users and tokens
		{"login", "POST", "/v1/login", "Login"},
		{"me", "GET", "/v1/me", "Me"},
		{"listUsers", "GET", "/v1/users", "ListUsers"},
		{"createUser", "POST", "/v1/users", "CreateUser"},
		{"getUser", "GET", "/v1/users/{id}", "GetUser"},
		{"deleteUser", "DELETE", "/v1/users/{id}", "DeleteUser"},
		{"listTokens", "GET", "/v1/tokens", "ListTokens"},
		{"createToken", "POST", "/v1/tokens", "CreateToken"},
		{"deleteToken", "DELETE", "/v1/tokens/{id}", "DeleteToken"},
		{"setUserEmail", "PUT", "/v1/users/{id}/email", "SetUserEmail"},
		{"getQuota", "GET", "/v1/users/{id}/quota", "Quota"},
		{"setQuota", "PUT", "/v1/users/{id}/quota", "PutQuota"},
		{"patchQuota", "PATCH", "/v1/users/{id}/quota", "SetQuota"},
		{"listAudit", "GET", "/v1/audit", "AuditLog"},
		// clusters
		{"listClusters", "GET", "/v1/clusters", "ListClusters"},
		{"getCluster", "GET", "/v1/clusters/{id}", "GetCluster"},
		{"createCluster", "POST", "/v1/clusters", "CreateCluster"},
		{"updateCluster", "PUT", "/v1/clusters/{id}", "UpdateCluster"},
		{"patchCluster", "PATCH", "/v1/clusters/{id}", "PatchCluster"},
		{"deleteCluster", "DELETE", "/v1/clusters/{id}", "DeleteCluster"},
		{"listStorageDrivers", "GET", "/v1/storage-drivers", "StorageDrivers"},
		{"getClusterStorageUsage", "GET", "/v1/clusters/{id}/storage-usage", "StorageUsage"},
		{"moveVMDisk", "POST", "/v1/vms/{id}/disk/move", "MoveVMDisk"},
		{"backupVM", "POST", "/v1/vms/{id}/backups", "BackupVM"},
		{"imageFromVM", "POST", "/v1/vms/{id}/image", "ImageFromVM"},
		{"cloneVM", "POST", "/v1/vms/{id}/clone", "CloneVM"},
		{"attachVMDisk", "POST", "/v1/vms/{id}/disks", "AttachVMDisk"},
		{"detachVMDisk", "DELETE", "/v1/vms/{id}/disks/{target}", "DetachVMDisk"},
		{"resizeVMDisk", "POST", "/v1/vms/{id}/disks/{target}/resize", "ResizeVMDisk"},
		{"listBackups", "GET", "/v1/vms/{id}/backups", "ListBackups"},
		{"restoreBackup", "POST", "/v1/vms/{id}/backups/{backup_id}/restore", "RestoreBackup"},
		{"deleteBackup", "DELETE", "/v1/vms/{id}/backups/{backup_id}", "DeleteBackup"},
		{"syncClusterFlood", "POST", "/v1/clusters/{id}/vxlan-sync", "SyncClusterFlood"},
		{"planRebalance", "POST", "/v1/clusters/{id}/rebalance-plan", "PlanRebalance"},
		{"rebalanceCluster", "POST", "/v1/clusters/{id}/rebalance", "Rebalance"},
		{"setClusterRescue", "PUT", "/v1/clusters/{id}/rescue", "SetClusterRescue"},
		{"setClusterTemplate", "PUT", "/v1/clusters/{id}/template", "SetClusterTemplate"},
		// domain templates
		{"listTemplates", "GET", "/v1/templates", "ListTemplates"},
		{"getTemplate", "GET", "/v1/templates/{id}", "GetTemplate"},
		{"createTemplate", "POST", "/v1/templates", "CreateTemplate"},
		{"updateTemplate", "PUT", "/v1/templates/{id}", "UpdateTemplate"},
		{"deleteTemplate", "DELETE", "/v1/templates/{id}", "DeleteTemplate"},
		// nodes
		{"listNodes", "GET", "/v1/nodes", "ListNodes"},
		{"getNode", "GET", "/v1/nodes/{id}", "GetNode"},
		{"addNode", "POST", "/v1/nodes", "AddNode"},
		{"setNodeMaintenance", "POST", "/v1/nodes/{id}/maintenance", "SetNodeMaintenance"},
		{"removeNode", "DELETE", "/v1/nodes/{id}", "RemoveNode"},
		{"setNodeVTEP", "PUT", "/v1/nodes/{id}/vtep", "SetNodeVTEP"},
		{"setNodeTags", "PUT", "/v1/nodes/{id}/tags", "SetNodeTags"},
		// IP pools
		{"listPools", "GET", "/v1/ippools", "ListPools"},
		{"getPool", "GET", "/v1/ippools/{id}", "GetPool"},
		{"createPool", "POST", "/v1/ippools", "CreatePool"},
		{"addPoolBlock", "POST", "/v1/ippools/{id}/blocks", "AddPoolBlock"},
		{"removePoolBlock", "DELETE", "/v1/ippools/{id}/blocks/{block}", "RemovePoolBlock"},
		{"deletePool", "DELETE", "/v1/ippools/{id}", "DeletePool"},
		{"checkPoolDNSBL", "POST", "/v1/ippools/{id}/dnsbl-check", "CheckPoolDNSBL"},
		// images
		{"listImages", "GET", "/v1/images", "ListImages"},
		{"getImage", "GET", "/v1/images/{id}", "GetImage"},
		{"createImage", "POST", "/v1/images", "CreateImage"},
		{"importImage", "POST", "/v1/images/{id}/import", "ImportImage"},
		{"deleteImage", "DELETE", "/v1/images/{id}", "DeleteImage"},
		// VMs
		{"listVMs", "GET", "/v1/vms", "ListVMs"},
		{"getVM", "GET", "/v1/vms/{id}", "GetVM"},
		{"createVM", "POST", "/v1/vms", "CreateVM"},
		{"deleteVM", "DELETE", "/v1/vms/{id}", "DeleteVM"},
		{"startVM", "POST", "/v1/vms/{id}/start", "StartVM"},
		{"stopVM", "POST", "/v1/vms/{id}/stop", "StopVM"},
		{"rebootVM", "POST", "/v1/vms/{id}/reboot", "RebootVM"},
		{"shutdownVM", "POST", "/v1/vms/{id}/shutdown", "ShutdownVM"},
		{"suspendVM", "POST", "/v1/vms/{id}/suspend", "SuspendVM"},
		{"resumeVM", "POST", "/v1/vms/{id}/resume", "ResumeVM"},
		{"resetVM", "POST", "/v1/vms/{id}/reset", "ResetVM"},
		{"resizeVM", "POST", "/v1/vms/{id}/resize", "ResizeVM"},
		{"setVMLimits", "PUT", "/v1/vms/{id}/limits", "SetVMLimits"},
		{"createSnapshot", "POST", "/v1/vms/{id}/snapshots", "CreateSnapshot"},
		{"listSnapshots", "GET", "/v1/vms/{id}/snapshots", "ListSnapshots"},
		{"deleteSnapshot", "DELETE", "/v1/vms/{id}/snapshots/{name}", "DeleteSnapshot"},
		{"revertSnapshot", "POST", "/v1/vms/{id}/snapshots/{name}/revert", "RevertSnapshot"},
		{"rescueVM", "POST", "/v1/vms/{id}/rescue", "RescueVM"},
		{"migrateVM", "POST", "/v1/vms/{id}/migrate", "MigrateVM"},
		{"getVMConsole", "GET", "/v1/vms/{id}/console", "GetVMConsole"},
		{"setVMTags", "PUT", "/v1/vms/{id}/tags", "SetVMTags"},
		{"createConsoleTicket", "POST", "/v1/vms/{id}/console", "ConsoleTicket"},
		{"guestInterfaces", "GET", "/v1/vms/{id}/guest/interfaces", "GuestInterfaces"},
		{"guestExec", "POST", "/v1/vms/{id}/guest/exec", "GuestExec"},
		{"setGuestPassword", "POST", "/v1/vms/{id}/guest/password", "SetGuestPassword"},
		// scripts
		{"listScripts", "GET", "/v1/scripts", "ListScripts"},
		{"getScript", "GET", "/v1/scripts/{id}", "GetScript"},
		{"createScript", "POST", "/v1/scripts", "CreateScript"},
		{"updateScript", "PUT", "/v1/scripts/{id}", "UpdateScript"},
		{"deleteScript", "DELETE", "/v1/scripts/{id}", "DeleteScript"},
		{"runScript", "POST", "/v1/scripts/{id}/runs", "RunScript"},
		{"listScriptRuns", "GET", "/v1/script-runs", "ListScriptRuns"},
		{"getScriptRun", "GET", "/v1/script-runs/{id}", "GetScriptRun"},
		{"listScriptVariables", "GET", "/v1/script-variables", "ListScriptVariables"},
		{"createScriptVariable", "POST", "/v1/script-variables", "CreateScriptVariable"},
		{"getScriptVariable", "GET", "/v1/script-variables/{id}", "GetScriptVariable"},
		{"updateScriptVariable", "PUT", "/v1/script-variables/{id}", "UpdateScriptVariable"},
		{"deleteScriptVariable", "DELETE", "/v1/script-variables/{id}", "DeleteScriptVariable"},
		// notifications
		{"getNotificationChannels", "GET", "/v1/notifications/channels", "NotificationChannels"},
		{"listSubscriptions", "GET", "/v1/notifications/subscriptions", "ListSubscriptions"},
		{"createSubscription", "POST", "/v1/notifications/subscriptions", "CreateSubscription"},
		{"getSubscription", "GET", "/v1/notifications/subscriptions/{id}", "GetSubscription"},
		{"deleteSubscription", "DELETE", "/v1/notifications/subscriptions/{id}", "DeleteSubscription"},
		{"testSubscription", "POST", "/v1/notifications/subscriptions/{id}/test", "TestSubscription"},
		{"listDeliveries", "GET", "/v1/notifications/deliveries", "ListDeliveries"},
		{"getDelivery", "GET", "/v1/notifications/deliveries/{id}", "GetDelivery"},
		// tasks
		{"listTasks", "GET", "/v1/tasks", "ListTasks"},
		{"getTask", "GET", "/v1/tasks/{id}", "GetTask"},
		{"getTaskLog", "GET", "/v1/tasks/{id}/log", "GetTaskLog"},
		{"cancelTask", "POST", "/v1/tasks/{id}/cancel", "CancelTask"},
	}
}

// call sends operation id: params fill the path's {names} in order, query
// (may be nil) is added, in is the JSON body (nil for none) and out
// receives the answer.
func (c *Client) call(ctx context.Context, id string, params []string, query url.Values, in, out any, headers ...string) error {
	op, ok := c.ops[id]
	if !ok {
		return virtplane.Errorf(virtplane.ErrNotImplemented, "client: operation %s is not in the client's table", id)
	}
	path, err := fillPath(op.Path, params)
	if err != nil {
		return err
	}
	if q := query.Encode(); q != "" {
		path += "?" + q
	}
	return c.Do(ctx, op.Method, path, in, out, headers...)
}

// fillPath puts params, escaped, into the {names} of a path template.
func fillPath(tmpl string, params []string) (string, error) {
	var b strings.Builder
	rest := tmpl
	i := 0
	for {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			b.WriteString(rest)
			break
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 || i >= len(params) {
			return "", virtplane.Errorf(virtplane.ErrInvalidArgument, "client: path %s needs more than %d parameters", tmpl, len(params))
		}
		if params[i] == "" {
			return "", virtplane.Errorf(virtplane.ErrInvalidArgument, "client: %s of %s is empty", rest[open:open+end+1], tmpl)
		}
		b.WriteString(rest[:open])
		b.WriteString(url.PathEscape(params[i]))
		rest = rest[open+end+1:]
		i++
	}
	if i != len(params) {
		return "", virtplane.Errorf(virtplane.ErrInvalidArgument, "client: path %s takes %d parameters, not %d", tmpl, i, len(params))
	}
	return b.String(), nil
}

// pageQuery is the query of a list.
func pageQuery(o ListOptions) url.Values {
	q := url.Values{}
	if o.After != "" {
		q.Set("after", o.After)
	}
	if o.Limit > 0 {
		q.Set("limit", itoa(o.Limit))
	}
	return q
}

// ListOptions pages a list: After is the Next of the previous page.
type ListOptions struct {
	After string
	Limit int
}
