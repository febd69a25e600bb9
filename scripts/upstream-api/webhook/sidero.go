package main

// Conversions of Sidero (metal.sidero.dev v1alpha1 <-> v1alpha2; MetalCluster,
// MetalMachine, MetalMachineTemplate v1alpha2 <-> v1alpha3) and of the Talos
// bootstrap provider (TalosConfig, TalosConfigTemplate v1alpha2 <-> v1alpha3).
//
// Upstream's Go conversion functions cannot be linked here: Sidero's module is
// not served by the Go module proxy, and both projects' api packages import
// `sigs.k8s.io/cluster-api/api/v1beta1`, a path Cluster API v1.13 no longer
// has. So each upstream conversion (sidero v0.6.13
// app/*/api/v1alpha{1,2}/*_conversion.go, CABPT v0.6.12
// api/v1alpha2/talosconfig_conversion.go) is re-expressed on unstructured
// objects: fields with the same name are copied (the generated autoConvert
// functions), the manual renames below are applied, and fields the target
// version lacks are pruned by the kube-apiserver against the target schema,
// as it prunes every webhook response. The `cluster.x-k8s.io/conversion-data`
// annotation behaves as upstream's util/conversion MarshalData/UnmarshalData:
// written with the hub object (without metadata) on down-conversion, removed
// on up-conversion, and read back only where upstream reads it (TalosConfig
// status.dataSecretName).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

const conversionDataAnnotation = "cluster.x-k8s.io/conversion-data"

type obj = map[string]any

// legacyConversion names, per group and kind, the hub version and the manual
// parts of upstream's conversion in each direction.
type legacyConversion struct {
	hub      string
	toHub    func(src, dst obj)
	fromHub  func(src, dst obj)
	annotate bool // down-conversion writes the conversion-data annotation
}

var legacyConversions = map[string]legacyConversion{
	"metal.sidero.dev/Server":                              {hub: "v1alpha2", toHub: serverToHub, fromHub: serverFromHub, annotate: true},
	"metal.sidero.dev/ServerClass":                         {hub: "v1alpha2", toHub: serverClassToHub, fromHub: serverClassFromHub, annotate: true},
	"metal.sidero.dev/Environment":                         {hub: "v1alpha2", annotate: true},
	"infrastructure.cluster.x-k8s.io/MetalCluster":         {hub: "v1alpha3", toHub: metalClusterToHub, fromHub: metalClusterFromHub, annotate: true},
	"infrastructure.cluster.x-k8s.io/MetalMachine":         {hub: "v1alpha3", toHub: renameStatus("errorMessage", "failureMessage", "errorReason", "failureReason"), fromHub: renameStatus("failureMessage", "errorMessage", "failureReason", "errorReason"), annotate: true},
	"infrastructure.cluster.x-k8s.io/MetalMachineTemplate": {hub: "v1alpha3", annotate: true},
	"bootstrap.cluster.x-k8s.io/TalosConfig":               {hub: "v1alpha3", toHub: renameStatus("errorMessage", "failureMessage", "errorReason", "failureReason"), fromHub: renameStatus("failureMessage", "errorMessage", "failureReason", "errorReason"), annotate: true},
	// Upstream's TalosConfigTemplate conversion is the generated copy alone.
	"bootstrap.cluster.x-k8s.io/TalosConfigTemplate": {hub: "v1alpha3"},
}

func lookup(o obj, path ...string) (any, bool) {
	var cur any = o
	for _, p := range path {
		m, ok := cur.(obj)
		if !ok {
			return nil, false
		}
		if cur, ok = m[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func child(o obj, key string) obj {
	if m, ok := o[key].(obj); ok {
		return m
	}
	m := obj{}
	o[key] = m
	return m
}

func str(o obj, key string) string {
	s, _ := o[key].(string)
	return s
}

// setStrings copies the named string fields that are set (Go's omitempty
// drops the empty ones upstream copies).
func setStrings(dst obj, pairs ...string) {
	for i := 0; i < len(pairs); i += 2 {
		if pairs[i+1] != "" {
			dst[pairs[i]] = pairs[i+1]
		}
	}
}

func systemInfo(in obj) obj {
	out := obj{}
	for _, k := range []string{"manufacturer", "productName", "version", "serialNumber", "skuNumber", "family"} {
		setStrings(out, k, str(in, k))
	}
	return out
}

// Server: v1alpha1 spec.system and spec.cpu became spec.hardware.system and
// spec.hardware.compute.processors[0] (cpu.version is the processor's productName).
func serverToHub(src, dst obj) {
	spec := child(dst, "spec")
	delete(spec, "system")
	delete(spec, "cpu")
	if sys, ok := lookup(src, "spec", "system"); ok {
		if m, ok := sys.(obj); ok {
			child(spec, "hardware")["system"] = systemInfo(m)
		}
	}
	if cpu, ok := lookup(src, "spec", "cpu"); ok {
		if m, ok := cpu.(obj); ok {
			p := obj{}
			setStrings(p, "manufacturer", str(m, "manufacturer"), "productName", str(m, "version"))
			child(spec, "hardware")["compute"] = obj{"processors": []any{p}}
		}
	}
}

func serverFromHub(src, dst obj) {
	spec := child(dst, "spec")
	delete(spec, "hardware")
	if sys, ok := lookup(src, "spec", "hardware", "system"); ok {
		if m, ok := sys.(obj); ok {
			spec["system"] = systemInfo(m)
		}
	}
	if procs, ok := lookup(src, "spec", "hardware", "compute", "processors"); ok {
		if list, ok := procs.([]any); ok && len(list) > 0 {
			if p, ok := list[0].(obj); ok {
				cpu := obj{}
				setStrings(cpu, "manufacturer", str(p, "manufacturer"), "version", str(p, "productName"))
				spec["cpu"] = cpu
			}
		}
	}
}

// ServerClass: each v1alpha1 qualifiers.systemInformation[] and qualifiers.cpu[]
// entry became one qualifiers.hardware[] entry (systems first, then CPUs).
func serverClassToHub(src, dst obj) {
	q, ok := lookup(dst, "spec", "qualifiers")
	if !ok {
		return
	}
	qualifiers := q.(obj)
	delete(qualifiers, "systemInformation")
	delete(qualifiers, "cpu")
	var hw []any
	if list, ok := lookup(src, "spec", "qualifiers", "systemInformation"); ok {
		for _, v := range asList(list) {
			hw = append(hw, obj{"system": systemInfo(v)})
		}
	}
	if list, ok := lookup(src, "spec", "qualifiers", "cpu"); ok {
		for _, v := range asList(list) {
			p := obj{}
			setStrings(p, "manufacturer", str(v, "manufacturer"), "productName", str(v, "version"))
			hw = append(hw, obj{"compute": obj{"processors": []any{p}}})
		}
	}
	if hw != nil {
		qualifiers["hardware"] = hw
	}
}

func serverClassFromHub(src, dst obj) {
	q, ok := lookup(dst, "spec", "qualifiers")
	if !ok {
		return
	}
	qualifiers := q.(obj)
	delete(qualifiers, "hardware")
	var systems, cpus []any
	if list, ok := lookup(src, "spec", "qualifiers", "hardware"); ok {
		for _, h := range asList(list) {
			if sys, ok := h["system"].(obj); ok {
				systems = append(systems, systemInfo(sys))
			}
			if procs, ok := lookup(h, "compute", "processors"); ok {
				if l := asList(procs); len(l) > 0 {
					cpu := obj{}
					setStrings(cpu, "manufacturer", str(l[0], "manufacturer"), "version", str(l[0], "productName"))
					cpus = append(cpus, cpu)
				}
			}
		}
	}
	if systems != nil {
		qualifiers["systemInformation"] = systems
	}
	if cpus != nil {
		qualifiers["cpu"] = cpus
	}
}

func asList(v any) []obj {
	var out []obj
	if l, ok := v.([]any); ok {
		for _, e := range l {
			if m, ok := e.(obj); ok {
				out = append(out, m)
			}
		}
	}
	return out
}

// MetalCluster: v1alpha2 spec.apiEndpoints[0] (else status.apiEndpoints[0])
// became spec.controlPlaneEndpoint; down-conversion writes it to both lists.
func metalClusterToHub(src, dst obj) {
	spec := child(dst, "spec")
	delete(spec, "apiEndpoints")
	if st, ok := dst["status"].(obj); ok {
		delete(st, "apiEndpoints")
	}
	for _, path := range [][]string{{"spec", "apiEndpoints"}, {"status", "apiEndpoints"}} {
		if l, ok := lookup(src, path...); ok {
			if eps := asList(l); len(eps) > 0 {
				ep := obj{"host": eps[0]["host"], "port": eps[0]["port"]}
				if ep["host"] == nil {
					ep["host"] = ""
				}
				if ep["port"] == nil {
					ep["port"] = int64(0)
				}
				spec["controlPlaneEndpoint"] = ep
				return
			}
		}
	}
}

func metalClusterFromHub(src, dst obj) {
	spec := child(dst, "spec")
	delete(spec, "controlPlaneEndpoint")
	ep, ok := lookup(src, "spec", "controlPlaneEndpoint")
	if !ok {
		return
	}
	m, _ := ep.(obj)
	// APIEndpoint.IsZero: no host and no port.
	if str(m, "host") == "" && (m["port"] == nil || fmt.Sprint(m["port"]) == "0") {
		return
	}
	one := []any{obj{"host": m["host"], "port": m["port"]}}
	spec["apiEndpoints"] = one
	child(dst, "status")["apiEndpoints"] = one
}

// renameStatus moves status fields old -> new (pairs), as the manual
// Error*/Failure* conversions do.
func renameStatus(pairs ...string) func(src, dst obj) {
	return func(_ obj, dst obj) {
		st, ok := dst["status"].(obj)
		if !ok {
			return
		}
		for i := 0; i < len(pairs); i += 2 {
			v, ok := st[pairs[i]]
			delete(st, pairs[i])
			if ok {
				st[pairs[i+1]] = v
			}
		}
	}
}

func deepCopy(o obj) obj {
	b, _ := json.Marshal(o)
	var out obj
	_ = json.Unmarshal(b, &out)
	return out
}

// convertLegacy converts one object to the desired apiVersion.
func convertLegacy(in obj, desired string) (obj, error) {
	apiVersion, _ := in["apiVersion"].(string)
	kind, _ := in["kind"].(string)
	group, fromVersion, _ := strings.Cut(apiVersion, "/")
	toGroup, toVersion, _ := strings.Cut(desired, "/")
	c, ok := legacyConversions[group+"/"+kind]
	if !ok || toGroup != group {
		return nil, fmt.Errorf("no conversion for %s %s to %s", apiVersion, kind, desired)
	}
	out := deepCopy(in)
	out["apiVersion"] = desired
	if fromVersion == toVersion {
		return out, nil
	}
	meta := child(out, "metadata")
	annotations, _ := meta["annotations"].(obj)
	if toVersion == c.hub {
		if c.annotate && annotations != nil {
			if data, ok := annotations[conversionDataAnnotation].(string); ok {
				var restored obj
				if err := json.Unmarshal([]byte(data), &restored); err != nil {
					return nil, fmt.Errorf("annotation %s of %s %s is not JSON: %w", conversionDataAnnotation, kind, str(meta, "name"), err)
				}
				delete(annotations, conversionDataAnnotation)
				if len(annotations) == 0 {
					delete(meta, "annotations")
				}
				if kind == "TalosConfig" {
					if name, ok := lookup(restored, "status", "dataSecretName"); ok {
						child(out, "status")["dataSecretName"] = name
					}
				}
			}
		}
		if c.toHub != nil {
			c.toHub(in, out)
		}
		return out, nil
	}
	if c.fromHub != nil {
		c.fromHub(in, out)
	}
	if c.annotate {
		hub := deepCopy(in)
		delete(hub, "metadata")
		data, err := json.Marshal(hub)
		if err != nil {
			return nil, err
		}
		if annotations == nil {
			annotations = obj{}
			meta["annotations"] = annotations
		}
		annotations[conversionDataAnnotation] = string(data)
	}
	return out, nil
}

// serveSideroConversion answers apiextensions.k8s.io/v1 ConversionReviews.
func serveSideroConversion(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 32<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	review := apiextensionsv1.ConversionReview{}
	if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
		http.Error(w, fmt.Sprintf("not a ConversionReview: %v", err), http.StatusBadRequest)
		return
	}
	resp := &apiextensionsv1.ConversionResponse{UID: review.Request.UID, Result: metav1.Status{Status: metav1.StatusSuccess}}
	for _, raw := range review.Request.Objects {
		var in obj
		if err := json.Unmarshal(raw.Raw, &in); err != nil {
			resp.Result = metav1.Status{Status: metav1.StatusFailure, Message: err.Error()}
			break
		}
		out, err := convertLegacy(in, review.Request.DesiredAPIVersion)
		if err != nil {
			resp.Result = metav1.Status{Status: metav1.StatusFailure, Message: err.Error()}
			resp.ConvertedObjects = nil
			break
		}
		b, _ := json.Marshal(out)
		resp.ConvertedObjects = append(resp.ConvertedObjects, runtime.RawExtension{Raw: b})
	}
	review.Request = nil
	review.Response = resp
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(review)
}

// conversionDispatcher sends ConversionReviews of the re-expressed kinds to
// serveSideroConversion and all others to upstream's handler.
func conversionDispatcher(upstream http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 32<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var peek struct {
			Request struct {
				Objects []struct {
					APIVersion string `json:"apiVersion"`
					Kind       string `json:"kind"`
				} `json:"objects"`
			} `json:"request"`
		}
		_ = json.Unmarshal(body, &peek)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if len(peek.Request.Objects) > 0 {
			group, _, _ := strings.Cut(peek.Request.Objects[0].APIVersion, "/")
			if _, ok := legacyConversions[group+"/"+peek.Request.Objects[0].Kind]; ok {
				serveSideroConversion(w, r)
				return
			}
		}
		upstream.ServeHTTP(w, r)
	})
}
