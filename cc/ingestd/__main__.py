from cc.ingestd.app import main

main()
