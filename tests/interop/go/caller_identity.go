// The AWS SDK for Go v2 as a credential_process consumer (tests/test_interop.py).
//
// usage: caller_identity ENDPOINT CALLS
//
// One aws.Config from the default chain (the profile in $AWS_PROFILE, whose
// credential_process runs credproc) and one STS client call GetCallerIdentity CALLS times
// at ENDPOINT. The endpoint is set in code: this SDK version ignores AWS_ENDPOINT_URL_STS.
// Prints one JSON object: {"sdk", "calls": [...]} or {"sdk", "error"}.
//
// Built offline in GOPATH mode against Debian's golang-github-aws-aws-sdk-go-v2-dev:
//   GO111MODULE=off GOPATH=/usr/share/gocode go build -o caller_identity caller_identity.go
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// The SDK's version, from the module metadata of the package this was built against.
const sdk = "go aws-sdk-go-v2 " + aws.SDKVersion

type call struct {
	Account string `json:"Account"`
	Arn     string `json:"Arn"`
}

func run(endpoint string, calls int) ([]call, error) {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"),
		config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }))
	if err != nil {
		return nil, err
	}
	client := sts.NewFromConfig(cfg, func(o *sts.Options) {
		o.EndpointResolver = sts.EndpointResolverFromURL(endpoint)
	})
	results := make([]call, 0, calls)
	for i := 0; i < calls; i++ {
		out, err := client.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			return nil, err
		}
		results = append(results, call{aws.ToString(out.Account), aws.ToString(out.Arn)})
	}
	return results, nil
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: caller_identity ENDPOINT CALLS")
		os.Exit(2)
	}
	calls, err := strconv.Atoi(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, "CALLS must be a number")
		os.Exit(2)
	}
	results, err := run(os.Args[1], calls)
	out := map[string]interface{}{"sdk": sdk}
	if err != nil {
		out["error"] = err.Error()
	} else {
		out["calls"] = results
	}
	json.NewEncoder(os.Stdout).Encode(out)
	if err != nil {
		os.Exit(1)
	}
}
