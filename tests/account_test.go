package tests

import (
	"fmt"
	"regexp"
	"sort"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"

	"github.com/secrets-platform/secrets-platform/internal/recorder"
)

// stackAccount is the AWS account a stack's config names (unseal.accountId).
func stackAccount(t *testing.T, cfg recorder.StackConfig) string {
	t.Helper()
	account, _ := decodeGroup(t, cfg, recorder.Project+":unseal")["accountId"].(string)
	if account == "" {
		t.Fatal("the stack config names no unseal.accountId")
	}
	return account
}

// arnAccount finds the account field of every ARN in a string.
var arnAccount = regexp.MustCompile(`arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:([0-9]{12}):`)

// AccountFindings lists every ARN, in any input or output of the render
// (policy documents and Helm values included), that names an account other
// than account: a reviewer reading a render sees one account.
func AccountFindings(resources []recorder.Resource, account string) []string {
	others := map[string][]string{}
	for _, r := range resources {
		for _, m := range []resource.PropertyMap{r.Inputs, r.Outputs} {
			walkPlain(resource.NewObjectProperty(m), "", func(path, s string) {
				for _, match := range arnAccount.FindAllStringSubmatch(s, -1) {
					if match[1] != account {
						others[match[1]] = append(others[match[1]], r.Type+" "+r.Name+" "+path)
					}
				}
			})
		}
	}
	var out []string
	for acct, where := range others {
		sort.Strings(where)
		out = append(out, fmt.Sprintf("account %s (not %s) in %d places, first %s", acct, account, len(where), where[0]))
	}
	sort.Strings(out)
	return out
}
