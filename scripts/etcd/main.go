// Command etcd is upstream etcd built from its published module, so the local
// kube-apiserver (the project's envtest) has a store without a release
// download. It adds nothing to etcd.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
