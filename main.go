// Command secrets-platform is the Pulumi program that stands up the hardened
// secrets platform of one stack.
package main

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/secrets-platform/secrets-platform/stacks"
)

func main() { pulumi.Run(stacks.Run) }
