// Command gen-crds copies upstream's published CRDs and webhook configurations,
// byte for byte, from the pinned sources in sources.yaml into api/crds/upstream,
// and writes index.json: for each CRD its source, Git blob id, the labels
// upstream's kustomization adds, its served versions and storage version.
//
//	go run ./gen-crds -out ../../api/crds/upstream [-snapshots DIR]
//
// Snapshot sources (modules the Go proxy refuses) are read from DIR/<owner>+<name>/repo
// (a bare clone) when -snapshots is given; otherwise the files already in -out are
// kept, after checking that their Git blob ids are the ones recorded for the pinned
// commit.
package main

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

type source struct {
	Module         string   `json:"module,omitempty"`
	Snapshot       string   `json:"snapshot,omitempty"`
	Version        string   `json:"version"`
	Sum            string   `json:"sum,omitempty"`
	Commit         string   `json:"commit,omitempty"`
	Kustomizations []string `json:"kustomizations"`
	Webhooks       []string `json:"webhooks,omitempty"`
}

type kustomization struct {
	Resources    []string          `json:"resources"`
	CommonLabels map[string]string `json:"commonLabels"`
	Labels       []struct {
		Pairs map[string]string `json:"pairs"`
	} `json:"labels"`
}

// Entry is one copied file in index.json.
type Entry struct {
	File    string            `json:"file"`
	Name    string            `json:"name,omitempty"`
	Kind    string            `json:"kind,omitempty"`
	Source  string            `json:"source"`
	GitBlob string            `json:"gitBlob"`
	Labels  map[string]string `json:"labels,omitempty"`
	Served  []string          `json:"served,omitempty"`
	Storage string            `json:"storage,omitempty"`
}

type index struct {
	Comment  string  `json:"comment"`
	CRDs     []Entry `json:"crds"`
	Webhooks []Entry `json:"webhooks"`
}

func gitBlob(b []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "gen-crds: "+format+"\n", a...)
	os.Exit(1)
}

// reader returns the bytes of a file of one source at its pinned version.
type reader func(rel string) ([]byte, error)

func moduleReader(s source) reader {
	cmd := exec.Command("go", "mod", "download", "-json", s.Module+"@"+s.Version)
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GONOSUMDB=github.com/metal3-io,github.com/siderolabs")
	out, err := cmd.Output()
	var info struct{ Dir, Sum, Error string }
	_ = json.Unmarshal(out, &info)
	if err != nil || info.Error != "" {
		fail("go mod download %s@%s: %v %s", s.Module, s.Version, err, info.Error)
	}
	if info.Sum != s.Sum {
		fail("%s@%s has sum %s, sources.yaml pins %s: the module changed under its version; do not update the pin without reading why", s.Module, s.Version, info.Sum, s.Sum)
	}
	return func(rel string) ([]byte, error) { return os.ReadFile(filepath.Join(info.Dir, rel)) }
}

func snapshotReader(s source, snapshots, out string, previous map[string]Entry) reader {
	if snapshots != "" {
		gitDir := filepath.Join(snapshots, strings.ReplaceAll(s.Snapshot, "/", "+"), "repo")
		return func(rel string) ([]byte, error) {
			return exec.Command("git", "--git-dir", gitDir, "show", s.Commit+":"+rel).Output()
		}
	}
	// Without a clone: the committed copy, provided it is the pinned blob.
	return func(rel string) ([]byte, error) {
		src := fmt.Sprintf("%s@%s %s", s.Snapshot, s.Commit, rel)
		for _, e := range previous {
			if e.Source != src {
				continue
			}
			b, err := os.ReadFile(filepath.Join(out, e.File))
			if err != nil {
				return nil, err
			}
			if gitBlob(b) != e.GitBlob {
				return nil, fmt.Errorf("%s is not upstream's blob %s of %s; regenerate with -snapshots", e.File, e.GitBlob, src)
			}
			return b, nil
		}
		if strings.HasSuffix(rel, "kustomization.yaml") {
			return nil, os.ErrNotExist
		}
		return nil, fmt.Errorf("%s is not in the committed index; regenerate with -snapshots", src)
	}
}

func main() {
	sourcesFile := flag.String("sources", "sources.yaml", "pinned sources")
	out := flag.String("out", "", "output folder (api/crds/upstream)")
	snapshots := flag.String("snapshots", os.Getenv("IRONFLOW_UPSTREAM_SNAPSHOTS"), "folder of bare clones <owner>+<name>/repo for snapshot sources")
	flag.Parse()
	if *out == "" {
		fail("-out is required")
	}
	raw, err := os.ReadFile(*sourcesFile)
	if err != nil {
		fail("%v", err)
	}
	var cfg struct{ Sources []source }
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		fail("%s: %v", *sourcesFile, err)
	}
	previous := map[string]Entry{}
	if b, err := os.ReadFile(filepath.Join(*out, "index.json")); err == nil {
		var old index
		if json.Unmarshal(b, &old) == nil {
			for _, e := range append(old.CRDs, old.Webhooks...) {
				previous[e.File] = e
			}
		}
	}

	files := map[string][]byte{}
	idx := index{Comment: "Generated by scripts/upstream-api/gen-crds from scripts/upstream-api/sources.yaml; do not edit."}
	for _, s := range cfg.Sources {
		var read reader
		var origin string
		if s.Module != "" {
			read, origin = moduleReader(s), s.Module+"@"+s.Version
		} else {
			read, origin = snapshotReader(s, *snapshots, *out, previous), s.Snapshot+"@"+s.Commit
		}
		for _, k := range s.Kustomizations {
			kb, err := read(path.Join(k, "kustomization.yaml"))
			var kz kustomization
			if err == nil {
				err = yaml.Unmarshal(kb, &kz)
			} else if s.Snapshot != "" && *snapshots == "" {
				// Without a clone, the resources and labels come from the committed index.
				for _, e := range previous {
					if strings.HasPrefix(e.Source, origin+" "+k+"/") {
						rel := strings.TrimPrefix(e.Source, origin+" "+k+"/")
						kz.Resources = append(kz.Resources, rel)
						if kz.CommonLabels == nil {
							kz.CommonLabels = map[string]string{}
						}
						for lk, lv := range e.Labels {
							kz.CommonLabels[lk] = lv
						}
					}
				}
				sort.Strings(kz.Resources)
				err = nil
			}
			if err != nil {
				fail("%s %s/kustomization.yaml: %v", origin, k, err)
			}
			labels := map[string]string{}
			for lk, lv := range kz.CommonLabels {
				labels[lk] = lv
			}
			for _, l := range kz.Labels {
				for lk, lv := range l.Pairs {
					labels[lk] = lv
				}
			}
			for _, res := range kz.Resources {
				rel := path.Join(k, strings.TrimSpace(res))
				b, err := read(rel)
				if err != nil {
					fail("%s %s: %v", origin, rel, err)
				}
				var crd struct {
					Kind     string
					Metadata struct{ Name string }
					Spec     struct {
						Names    struct{ Kind string }
						Versions []struct {
							Name    string
							Served  bool
							Storage bool
						}
					}
				}
				if err := yaml.Unmarshal(b, &crd); err != nil || crd.Kind != "CustomResourceDefinition" {
					fail("%s %s is not a CustomResourceDefinition: %v", origin, rel, err)
				}
				e := Entry{File: path.Base(rel), Name: crd.Metadata.Name, Kind: crd.Spec.Names.Kind, Source: origin + " " + rel, GitBlob: gitBlob(b)}
				if len(labels) > 0 {
					e.Labels = labels
				}
				for _, v := range crd.Spec.Versions {
					if v.Served {
						e.Served = append(e.Served, v.Name)
					}
					if v.Storage {
						e.Storage = v.Name
					}
				}
				if _, dup := files[e.File]; dup {
					fail("two sources write %s", e.File)
				}
				files[e.File] = b
				idx.CRDs = append(idx.CRDs, e)
			}
		}
		for _, w := range s.Webhooks {
			b, err := read(w)
			if err != nil {
				fail("%s %s: %v", origin, w, err)
			}
			name := "webhooks_" + strings.ReplaceAll(strings.TrimSuffix(w, "/config/webhook/manifests.yaml"), "/", "-") + ".yaml"
			if w == "config/webhook/manifests.yaml" {
				name = "webhooks_" + path.Base(s.Module) + ".yaml"
			}
			files[name] = b
			idx.Webhooks = append(idx.Webhooks, Entry{File: name, Source: origin + " " + w, GitBlob: gitBlob(b)})
		}
	}
	sort.Slice(idx.CRDs, func(i, j int) bool { return idx.CRDs[i].File < idx.CRDs[j].File })
	ib, _ := json.MarshalIndent(idx, "", "  ")
	files["index.json"] = append(ib, '\n')

	if err := os.MkdirAll(*out, 0o755); err != nil {
		fail("%v", err)
	}
	// Files of an earlier pin that no source writes any more are removed.
	old, _ := filepath.Glob(filepath.Join(*out, "*"))
	for _, f := range old {
		if _, keep := files[filepath.Base(f)]; !keep && filepath.Base(f) != "README.md" {
			_ = os.Remove(f)
		}
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := filepath.Join(*out, n)
		if cur, err := os.ReadFile(p); err == nil && bytes.Equal(cur, files[n]) {
			continue
		}
		if err := os.WriteFile(p, files[n], 0o644); err != nil {
			fail("%v", err)
		}
	}
	fmt.Printf("gen-crds: %d CRDs, %d webhook configurations in %s\n", len(idx.CRDs), len(idx.Webhooks), *out)
}
