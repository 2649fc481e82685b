// The AWS SDK for JavaScript v3 as a credential_process consumer (tests/test_interop.py).
//
// usage: node caller_identity.js ENDPOINT CALLS [chain|fromProcess]
//
// One STSClient, whose credentials come from the profile in $AWS_PROFILE (its
// credential_process runs credproc), calls GetCallerIdentity CALLS times at ENDPOINT.
// "chain" (the default) leaves credentials to the SDK's default provider chain, as most
// programs do; "fromProcess" names the process provider explicitly. The endpoint is set in
// code: it must not depend on whether this SDK version reads AWS_ENDPOINT_URL_STS.
// Prints one JSON object: {"sdk", "calls": [{"Account", "Arn"}, ...]} or {"sdk", "error"}.
"use strict";

const { STSClient, GetCallerIdentityCommand } = require("@aws-sdk/client-sts");
const { fromProcess } = require("@aws-sdk/credential-providers");
const sdkVersion = require("@aws-sdk/client-sts/package.json").version;

async function main() {
  const [endpoint, calls = "1", mode = "chain"] = process.argv.slice(2);
  const options = { endpoint, region: "us-east-1", maxAttempts: 1 };
  if (mode === "fromProcess") {
    options.credentials = fromProcess({ profile: process.env.AWS_PROFILE });
  } else if (mode !== "chain") {
    throw new Error(`unknown mode ${mode}`);
  }
  const client = new STSClient(options);
  const results = [];
  for (let i = 0; i < Number(calls); i++) {
    const answer = await client.send(new GetCallerIdentityCommand({}));
    results.push({ Account: answer.Account, Arn: answer.Arn });
  }
  return results;
}

main().then(
  (calls) => console.log(JSON.stringify({ sdk: `js-v3 ${sdkVersion}`, calls })),
  (error) => {
    console.log(JSON.stringify({ sdk: `js-v3 ${sdkVersion}`, error: `${error.name}: ${error.message}` }));
    process.exitCode = 1;
  },
);
