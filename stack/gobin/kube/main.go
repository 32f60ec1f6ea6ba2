// Command flotilla-kube is one binary carrying a whole Kubernetes control plane
// for Flotilla's local stack (the old "hyperkube" idea): one link, shared
// compiled packages, less build time and disk than four separate binaries.
//
//	flotilla-kube etcd ...                    (go.etcd.io/etcd/server/v3/etcdmain)
//	flotilla-kube kube-apiserver ...
//	flotilla-kube kube-controller-manager ...
//	flotilla-kube kube-scheduler ...
package main

import (
	"fmt"
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
	"k8s.io/component-base/cli"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: flotilla-kube etcd|kube-apiserver|kube-controller-manager|kube-scheduler [flags]")
		os.Exit(2)
	}
	component := os.Args[1]
	switch component {
	case "etcd":
		etcdmain.Main(append([]string{"etcd"}, os.Args[2:]...))
		return
	case "kube-apiserver":
		cmd := apiserver.NewAPIServerCommand()
		cmd.SetArgs(os.Args[2:])
		os.Exit(cli.Run(cmd))
	case "kube-controller-manager":
		cmd := controllermanager.NewControllerManagerCommand()
		cmd.SetArgs(os.Args[2:])
		os.Exit(cli.Run(cmd))
	case "kube-scheduler":
		cmd := scheduler.NewSchedulerCommand()
		cmd.SetArgs(os.Args[2:])
		os.Exit(cli.Run(cmd))
	default:
		fmt.Fprintf(os.Stderr, "unknown component %q\n", component)
		os.Exit(2)
	}
}
