from cc.webd.app import main

main()
